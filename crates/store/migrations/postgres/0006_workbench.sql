-- The caseworker workbench (issue #12): accounts, sessions, failed-login
-- counters per address, the audit log, and what a case needs to be worked on.
-- Keep in step with migrations/sqlite/0004_workbench.sql.

ALTER TABLE cases DROP CONSTRAINT IF EXISTS cases_status_check;
ALTER TABLE cases ADD CONSTRAINT cases_status_check
    CHECK (status IN ('open', 'deferred', 'released', 'closed'));
ALTER TABLE cases
    -- optimistic locking: every change of the case increments it
    ADD COLUMN version        INTEGER NOT NULL DEFAULT 1,
    -- the application JSON with the corrections applied; NULL = unchanged
    ADD COLUMN corrected_body BYTEA,
    -- JSON array of allegro_core::record::Correction
    ADD COLUMN corrections    TEXT NOT NULL DEFAULT '[]',
    -- findings of the last check; NULL = applications.findings
    ADD COLUMN findings       TEXT,
    -- lower-cased "vornamen familienname", for the search (personal data)
    ADD COLUMN applicant      TEXT,
    -- ",rule1,rule2," of the current error findings, for the rule filter
    ADD COLUMN error_rules    TEXT NOT NULL DEFAULT '',
    ADD COLUMN defer_reason   TEXT,
    ADD COLUMN follow_up      DATE,
    ADD COLUMN close_reason   TEXT,
    ADD COLUMN closed_at      TIMESTAMPTZ;
CREATE INDEX cases_status_created ON cases (status, created_at);
CREATE INDEX cases_jobcenter_status_created ON cases (dienststellennummer, status, created_at);
-- The list shows only cases open for work, oldest first: partial indexes in
-- exactly that order answer a page, the count, the oldest and the
-- Dienststellen without a sort (docs/workbench.md, benchmark).
CREATE INDEX cases_work_created ON cases (created_at, antrag_id)
    WHERE status IN ('open', 'deferred');
CREATE INDEX cases_work_jobcenter ON cases (dienststellennummer, created_at, antrag_id)
    WHERE status IN ('open', 'deferred');

-- Backfill of the search and filter columns from the stored application,
-- row by row so that one body that is not valid JSON (for jsonb) is left
-- NULL / '' instead of stopping the upgrade.
DO $$
DECLARE r RECORD;
BEGIN
    FOR r IN SELECT antrag_id FROM cases LOOP
        BEGIN
            UPDATE cases c SET
                applicant = NULLIF(lower(trim(
                    coalesce(j.doc #>> '{antragsteller,vornamen}', '') || ' ' ||
                    coalesce(j.doc #>> '{antragsteller,familienname}', ''))), ''),
                error_rules = coalesce((
                    SELECT ',' || string_agg(DISTINCT f->>'rule', ',' ORDER BY f->>'rule') || ','
                    FROM jsonb_array_elements(j.findings) f
                    WHERE f->>'severity' = 'error'), '')
            FROM (SELECT convert_from(a.body, 'UTF8')::jsonb AS doc, a.findings::jsonb AS findings
                  FROM applications a WHERE a.antrag_id = r.antrag_id) j
            WHERE c.antrag_id = r.antrag_id;
        EXCEPTION WHEN others THEN
            NULL;
        END;
    END LOOP;
END
$$;

CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,                -- argon2id PHC string
    roles         TEXT NOT NULL,                -- comma list
    dienststellen TEXT NOT NULL,                -- comma list
    disabled      BOOLEAN NOT NULL DEFAULT false,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until  TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE sessions (
    token_hash   TEXT PRIMARY KEY,              -- sha256 hex of the cookie value
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    last_seen_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE login_failures (
    address         TEXT PRIMARY KEY,
    failures        INTEGER NOT NULL,
    last_failure_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE audit (
    id        BIGSERIAL PRIMARY KEY,
    at        TIMESTAMPTZ NOT NULL,
    actor     TEXT NOT NULL,                    -- user name or 'system'
    antrag_id UUID,
    action    TEXT NOT NULL,
    pointer   TEXT,
    old_value TEXT,                             -- personal data: nulled by retention
    new_value TEXT,
    detail    TEXT
);
CREATE INDEX audit_antrag ON audit (antrag_id, at);
CREATE INDEX audit_at ON audit (at);
