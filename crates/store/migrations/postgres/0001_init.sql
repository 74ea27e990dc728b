-- allegro-bridge store, PostgreSQL dialect. Keep in step with migrations/sqlite.

-- Every readable application (accepted or rejected), keyed by antragId.
CREATE TABLE applications (
    antrag_id           UUID PRIMARY KEY,
    body                BYTEA NOT NULL,
    body_sha256         TEXT NOT NULL,
    outcome             TEXT NOT NULL CHECK (outcome IN ('accepted', 'rejected')),
    mapping             TEXT,
    findings            TEXT NOT NULL,          -- JSON array of findings
    dienststellennummer TEXT,                   -- jobcenter, for the workbench's per-jobcenter view
    message_id          TEXT,
    created_at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX applications_jobcenter ON applications (dienststellennummer, created_at);

-- Cases to fix (Klärfälle) for caseworkers.
CREATE TABLE cases (
    antrag_id           UUID PRIMARY KEY REFERENCES applications (antrag_id),
    dienststellennummer TEXT,
    status              TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'released')),
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX cases_jobcenter_status ON cases (dienststellennummer, status);

-- The transactional outbox: one import record per antragId; written_at is set
-- once the file is durable in the outbox directory.
CREATE TABLE records (
    antrag_id  UUID PRIMARY KEY REFERENCES applications (antrag_id),
    file_name  TEXT NOT NULL,
    xml        BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    written_at TIMESTAMPTZ
);
CREATE INDEX records_pending ON records (created_at) WHERE written_at IS NULL;

-- The dead-letter log: one live row per dead-lettered message (dedup_key);
-- replayed_at frees the key so a replayed message may be dead-lettered again.
CREATE TABLE dead_letters (
    id          UUID PRIMARY KEY,
    dedup_key   TEXT NOT NULL,
    antrag_id   UUID,
    reason      TEXT NOT NULL,
    detail      TEXT NOT NULL,
    body_sha256 TEXT NOT NULL,
    first_seen  TIMESTAMPTZ NOT NULL,
    replayed_at TIMESTAMPTZ
);
CREATE UNIQUE INDEX dead_letters_live ON dead_letters (dedup_key) WHERE replayed_at IS NULL;
CREATE INDEX dead_letters_antrag ON dead_letters (antrag_id);
