-- FIT-Connect (issue #23): the submissions taken from the Zustelldienst and
-- the answer owed to each (the event outbox), and the attachments they
-- brought. Keep in step with migrations/sqlite/0013_fitconnect.sql.
--
-- A submission's row goes published (its data handed to the intake queue,
-- waiting until the application, or the Nachreichung, is stored under the
-- same body hash) -> answer (the signed event is made and kept; sent until
-- the Zustelldienst has it) -> done. A submission rejected before intake
-- starts at answer. An answer the Zustelldienst refuses (422) ends as
-- refused, for the operator (metric, log).
CREATE TABLE fitconnect_submissions (
    submission_id  UUID PRIMARY KEY,
    case_id        UUID NOT NULL,
    destination_id UUID NOT NULL,
    antrag_id      UUID,                            -- NULL when rejected before intake
    nachreichung_id UUID,                           -- the data is a Nachreichung (contract §8)
    dead_letter_key TEXT,                           -- dedup_key of its message, were it dead-lettered
    body_sha256    TEXT,                            -- SHA-256 of the data as published
    state          TEXT NOT NULL CHECK (state IN ('published', 'answer', 'done', 'refused')),
    tags           TEXT,                            -- JSON: the authentication tags to quote
    answer         TEXT CHECK (answer IN ('accept', 'reject')),
    problem        TEXT,                            -- the problem type's name (reject)
    event          TEXT,                            -- the signed event, once made
    event_jti      UUID,
    attempts       INTEGER NOT NULL DEFAULT 0,      -- sends tried
    received_at    TIMESTAMPTZ NOT NULL,
    answered_at    TIMESTAMPTZ,
    sent_at        TIMESTAMPTZ
);
CREATE INDEX fitconnect_open ON fitconnect_submissions (state) WHERE state IN ('published', 'answer');

-- Attachments (the uploaded Nachweise), decrypted and hash-checked, per
-- submission; shown with the application once its submission is accepted,
-- deleted when it is rejected. The content is personal data: retention
-- deletes it with the application's payload.
CREATE TABLE attachments (
    antrag_id     UUID NOT NULL,
    attachment_id UUID NOT NULL,
    submission_id UUID NOT NULL,
    purpose       TEXT NOT NULL,                    -- form | attachment | report
    mime_type     TEXT NOT NULL,
    filename      TEXT,
    description   TEXT,
    sha512        TEXT NOT NULL,
    bytes         BIGINT NOT NULL,
    content       BYTEA,                             -- NULL once purged
    created_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (submission_id, attachment_id)
);
CREATE INDEX attachments_antrag ON attachments (antrag_id);
