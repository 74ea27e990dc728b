-- Kennzahlen (issue #22): what the figures need beyond the tables as they
-- are. Keep in step with migrations/sqlite/0011_kennzahlen.sql.
--
-- The rules a case was opened for (`,r1,r2,` like error_rules, which a
-- release empties); set once when the case is stored, kept by retention.
ALTER TABLE cases ADD COLUMN intake_rules TEXT NOT NULL DEFAULT '';
UPDATE cases c SET intake_rules = coalesce((
    SELECT ',' || string_agg(DISTINCT f->>'rule', ',' ORDER BY f->>'rule') || ','
    FROM jsonb_array_elements(a.findings::jsonb) f
    WHERE f->>'severity' = 'error'), '')
FROM applications a WHERE a.antrag_id = c.antrag_id;

-- Dead-letter log rows a purge deleted, counted per month (UTC) of their
-- first sighting, so a month's figures stay the same after its purge.
CREATE TABLE dead_letters_purged (
    month TEXT PRIMARY KEY,                     -- YYYY-MM
    count BIGINT NOT NULL
);

-- The figures scan applications by receipt; the covering index keeps the
-- scan off the heap (bodies).
CREATE INDEX applications_received ON applications (created_at)
    INCLUDE (dienststellennummer, outcome, mapping);
CREATE INDEX audit_edits ON audit (antrag_id, pointer) WHERE action = 'edit';
