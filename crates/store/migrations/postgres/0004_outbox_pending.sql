-- The outbox queue gets its own narrow table. Marking a record written used
-- to UPDATE records.written_at, which writes a new version of the whole row
-- (the record XML included: about 3 kB of table and WAL per record) and,
-- because the partial index names written_at, new index entries too. Now a
-- record row is never changed after its insert: its pending row is inserted
-- in the same transaction and deleted once the file is durable. When a file
-- was written is its own modification time.
CREATE TABLE outbox_pending (
    antrag_id  UUID PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL
);
INSERT INTO outbox_pending (antrag_id, created_at)
    SELECT antrag_id, created_at FROM records WHERE written_at IS NULL;
DROP INDEX records_pending;
ALTER TABLE records DROP COLUMN written_at;
