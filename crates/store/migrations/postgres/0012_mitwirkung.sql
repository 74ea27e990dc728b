-- Mitwirkung (issue #20): the documents an application owes, followed until
-- they arrive; the Nachreichung messages that delivered them; the request
-- letters; and the follow-up records (Nachweiseingang) for ALLEGRO, which
-- share the outbox with the import records: their pending rows go into
-- outbox_pending under the follow-up's own id (its column antrag_id is the
-- outbox key). Keep in step with migrations/sqlite/0010_mitwirkung.sql.

CREATE TABLE documents_owed (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    antrag_id           UUID NOT NULL REFERENCES applications (antrag_id),
    dienststellennummer TEXT,
    kind                TEXT NOT NULL,
    person_id           TEXT NOT NULL DEFAULT '',
    pointer             TEXT NOT NULL,
    rule                TEXT NOT NULL,
    state               TEXT NOT NULL DEFAULT 'offen'
                        CHECK (state IN ('offen', 'angefordert', 'eingegangen', 'verzichtet')),
    deadline            DATE,
    requested_at        TIMESTAMPTZ,
    received_on         DATE,
    received_via        TEXT CHECK (received_via IN ('nachreichung', 'sachbearbeitung', 'fitconnect')),
    file_sha256         TEXT,
    file_ref            TEXT,
    waiver_reason       TEXT,
    waived_by           TEXT,
    version             INTEGER NOT NULL DEFAULT 1,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    UNIQUE (antrag_id, kind, person_id)
);
CREATE INDEX documents_owed_work ON documents_owed (dienststellennummer, state, deadline);
CREATE INDEX documents_owed_state ON documents_owed (state, deadline);

CREATE TABLE nachreichungen (
    id          UUID PRIMARY KEY,
    antrag_id   UUID NOT NULL,
    document_id BIGINT NOT NULL REFERENCES documents_owed (id),
    body_sha256 TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX nachreichungen_antrag ON nachreichungen (antrag_id);

CREATE TABLE letters (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    antrag_id   UUID NOT NULL REFERENCES applications (antrag_id),
    created_at  TIMESTAMPTZ NOT NULL,
    created_by  TEXT NOT NULL,
    deadline    DATE NOT NULL,
    pdf         BYTEA NOT NULL
);
CREATE INDEX letters_antrag ON letters (antrag_id, created_at);

CREATE TABLE follow_up_records (
    id          UUID PRIMARY KEY,
    antrag_id   UUID NOT NULL REFERENCES applications (antrag_id),
    file_name   TEXT NOT NULL,
    xml         BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX follow_up_records_antrag ON follow_up_records (antrag_id);
