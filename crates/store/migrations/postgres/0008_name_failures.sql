-- Failed workbench logins under names that have no account, counted and
-- locked exactly like an account's (users.failed_logins, users.locked_until),
-- so that a lock does not tell which names exist. The name is kept only as
-- its SHA-256 (hex). Keep in step with migrations/sqlite/0006_name_failures.sql.
CREATE TABLE name_failures (
    name_sha256  TEXT PRIMARY KEY,
    failures     INTEGER NOT NULL,
    locked_until TIMESTAMPTZ
);
