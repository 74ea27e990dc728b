-- The caseworker workbench (issue #12): accounts, sessions, failed-login
-- counters per address, the audit log, and what a case needs to be worked on.
-- Keep in step with migrations/postgres/0006_workbench.sql.

-- Cases: the status gains `deferred` and `closed`, which changes the CHECK,
-- so SQLite rebuilds the table (nothing references it).
CREATE TABLE cases_new (
    antrag_id           BLOB PRIMARY KEY REFERENCES applications (antrag_id),
    dienststellennummer TEXT,
    status              TEXT NOT NULL DEFAULT 'open'
                        CHECK (status IN ('open', 'deferred', 'released', 'closed')),
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    -- optimistic locking: every change of the case increments it
    version             INTEGER NOT NULL DEFAULT 1,
    -- the application JSON with the corrections applied; NULL = unchanged
    corrected_body      BLOB,
    -- JSON array of allegro_core::record::Correction
    corrections         TEXT NOT NULL DEFAULT '[]',
    -- findings of the last check; NULL = applications.findings
    findings            TEXT,
    -- lower-cased "vornamen familienname", for the search (personal data)
    applicant           TEXT,
    -- ",rule1,rule2," of the current error findings, for the rule filter
    error_rules         TEXT NOT NULL DEFAULT '',
    defer_reason        TEXT,
    follow_up           TEXT,                   -- YYYY-MM-DD
    close_reason        TEXT,
    closed_at           TEXT
);
INSERT INTO cases_new (antrag_id, dienststellennummer, status, created_at, updated_at)
    SELECT antrag_id, dienststellennummer, status, created_at, updated_at FROM cases;
DROP TABLE cases;
ALTER TABLE cases_new RENAME TO cases;
CREATE INDEX cases_jobcenter_status ON cases (dienststellennummer, status);
CREATE INDEX cases_status_created ON cases (status, created_at);
CREATE INDEX cases_jobcenter_status_created ON cases (dienststellennummer, status, created_at);
-- The list shows only cases open for work, oldest first: partial indexes in
-- exactly that order answer a page, the count, the oldest and the
-- Dienststellen without a sort (docs/workbench.md, benchmark).
CREATE INDEX cases_work_created ON cases (created_at, antrag_id)
    WHERE status IN ('open', 'deferred');
CREATE INDEX cases_work_jobcenter ON cases (dienststellennummer, created_at, antrag_id)
    WHERE status IN ('open', 'deferred');

-- Backfill of the search and filter columns from the stored application
-- (rows whose JSON is not valid are left NULL / '').
UPDATE cases SET
    applicant = (
        SELECT lower(trim(
            coalesce(json_extract(CAST(a.body AS TEXT), '$.antragsteller.vornamen'), '') || ' ' ||
            coalesce(json_extract(CAST(a.body AS TEXT), '$.antragsteller.familienname'), '')))
        FROM applications a
        WHERE a.antrag_id = cases.antrag_id AND json_valid(CAST(a.body AS TEXT))),
    error_rules = coalesce((
        SELECT ',' || group_concat(rule, ',') || ','
        FROM (SELECT DISTINCT json_extract(f.value, '$.rule') AS rule
              FROM applications a, json_each(a.findings) f
              WHERE a.antrag_id = cases.antrag_id AND json_valid(a.findings)
                AND json_extract(f.value, '$.severity') = 'error'
              ORDER BY rule)), '');
UPDATE cases SET applicant = NULL WHERE applicant = '';

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,                -- argon2id PHC string
    roles         TEXT NOT NULL,                -- comma list
    dienststellen TEXT NOT NULL,                -- comma list
    disabled      BOOLEAN NOT NULL DEFAULT false,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until  TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

CREATE TABLE sessions (
    token_hash   TEXT PRIMARY KEY,              -- sha256 hex of the cookie value
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    last_seen_at TEXT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE login_failures (
    address         TEXT PRIMARY KEY,
    failures        INTEGER NOT NULL,
    last_failure_at TEXT NOT NULL
);

CREATE TABLE audit (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        TEXT NOT NULL,
    actor     TEXT NOT NULL,                    -- user name or 'system'
    antrag_id BLOB,
    action    TEXT NOT NULL,
    pointer   TEXT,
    old_value TEXT,                             -- personal data: nulled by retention
    new_value TEXT,
    detail    TEXT
);
CREATE INDEX audit_antrag ON audit (antrag_id, at);
CREATE INDEX audit_at ON audit (at);
