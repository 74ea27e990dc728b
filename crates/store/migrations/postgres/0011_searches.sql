-- Saved searches of the workbench's case list (issue #19): what was typed
-- into the search box is kept here, bound to the session, and the list's
-- URL carries only the opaque id (`/faelle?suche=<id>`), so no name enters
-- browser history, proxy or access logs. A search ends with its session
-- (logout, timeout, retention purge, account deleted).
-- Keep in step with migrations/sqlite/0009_searches.sql.
CREATE TABLE searches (
    id           TEXT PRIMARY KEY,              -- 128 random bits, hex
    session_hash TEXT NOT NULL REFERENCES sessions (token_hash) ON DELETE CASCADE,
    text         TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX searches_session ON searches (session_hash, created_at);
