-- Mitwirkung (issue #20): the documents an application owes, followed until
-- they arrive; the Nachreichung messages that delivered them; the request
-- letters; and the follow-up records (Nachweiseingang) for ALLEGRO, which
-- share the outbox with the import records: their pending rows go into
-- outbox_pending under the follow-up's own id (its column antrag_id is the
-- outbox key). Keep in step with migrations/postgres/0012_mitwirkung.sql.

CREATE TABLE documents_owed (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    antrag_id           BLOB NOT NULL REFERENCES applications (antrag_id),
    dienststellennummer TEXT,
    kind                TEXT NOT NULL,               -- e.g. LOHNABRECHNUNG
    person_id           TEXT NOT NULL DEFAULT '',    -- '' = the household
    pointer             TEXT NOT NULL,               -- the finding that asked for it
    rule                TEXT NOT NULL,
    state               TEXT NOT NULL DEFAULT 'offen'
                        CHECK (state IN ('offen', 'angefordert', 'eingegangen', 'verzichtet')),
    deadline            TEXT,                        -- YYYY-MM-DD, once requested
    requested_at        TEXT,
    received_on         TEXT,                        -- YYYY-MM-DD
    received_via        TEXT CHECK (received_via IN ('nachreichung', 'sachbearbeitung', 'fitconnect')),
    file_sha256         TEXT,
    file_ref            TEXT,
    waiver_reason       TEXT,                        -- free text: nulled by retention
    waived_by           TEXT,
    version             INTEGER NOT NULL DEFAULT 1,  -- optimistic locking
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    UNIQUE (antrag_id, kind, person_id)
);
-- The Mitwirkung page: a Dienststelle's documents by state and deadline.
CREATE INDEX documents_owed_work ON documents_owed (dienststellennummer, state, deadline);
CREATE INDEX documents_owed_state ON documents_owed (state, deadline);

CREATE TABLE nachreichungen (
    id          BLOB PRIMARY KEY,                    -- nachreichungId
    antrag_id   BLOB NOT NULL,
    document_id INTEGER NOT NULL REFERENCES documents_owed (id),
    body_sha256 TEXT NOT NULL,
    received_at TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX nachreichungen_antrag ON nachreichungen (antrag_id);

CREATE TABLE letters (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    antrag_id   BLOB NOT NULL REFERENCES applications (antrag_id),
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    deadline    TEXT NOT NULL,                       -- YYYY-MM-DD
    pdf         BLOB NOT NULL                        -- personal data: deleted by retention
);
CREATE INDEX letters_antrag ON letters (antrag_id, created_at);

CREATE TABLE follow_up_records (
    id          BLOB PRIMARY KEY,                    -- outbox key, the sink's message_id
    antrag_id   BLOB NOT NULL REFERENCES applications (antrag_id),
    file_name   TEXT NOT NULL,
    xml         BLOB NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX follow_up_records_antrag ON follow_up_records (antrag_id);
