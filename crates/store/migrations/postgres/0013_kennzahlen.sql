-- Kennzahlen (issue #22): what the figures need beyond the tables as they
-- are. Keep in step with migrations/sqlite/0011_kennzahlen.sql.
--
-- The rules a case was opened for (`,r1,r2,` like error_rules, which a
-- release empties); set once when the case is stored, kept by retention.
ALTER TABLE cases ADD COLUMN intake_rules TEXT NOT NULL DEFAULT '';
-- Set-based; should a stored findings column not parse, row by row,
-- leaving that one case empty.
DO $$
BEGIN
    UPDATE cases c SET intake_rules = coalesce((
        SELECT ',' || string_agg(DISTINCT f->>'rule', ',' ORDER BY f->>'rule') || ','
        FROM jsonb_array_elements(a.findings::jsonb) f
        WHERE f->>'severity' = 'error'), '')
    FROM applications a WHERE a.antrag_id = c.antrag_id;
EXCEPTION WHEN others THEN
    DECLARE r RECORD;
    BEGIN
        FOR r IN SELECT antrag_id FROM cases LOOP
            BEGIN
                UPDATE cases c SET intake_rules = coalesce((
                    SELECT ',' || string_agg(DISTINCT f->>'rule', ',' ORDER BY f->>'rule') || ','
                    FROM jsonb_array_elements(a.findings::jsonb) f
                    WHERE f->>'severity' = 'error'), '')
                FROM applications a
                WHERE a.antrag_id = c.antrag_id AND c.antrag_id = r.antrag_id;
            EXCEPTION WHEN others THEN
                NULL;
            END;
        END LOOP;
    END;
END
$$;

-- Dead-letter log rows a purge deleted, counted per month (UTC) of their
-- first sighting, so a month's figures stay the same after its purge.
CREATE TABLE dead_letters_purged (
    month TEXT PRIMARY KEY,                     -- YYYY-MM
    count BIGINT NOT NULL
);

-- The figures scan applications by receipt; the covering index keeps the
-- scan off the heap (bodies).
CREATE INDEX applications_received ON applications (created_at)
    INCLUDE (dienststellennummer, outcome, mapping, antrag_id);
CREATE INDEX audit_edits ON audit (antrag_id, pointer) WHERE action = 'edit';

-- Received and accepted applications of the months that are over, per
-- Dienststelle and mapping ('' for none), filled once per month when the
-- figures are first asked for (an application's receipt time, outcome,
-- Dienststelle and mapping never change); kennzahlen_eingang_monate says
-- which months are filled.
CREATE TABLE kennzahlen_eingang (
    monat        TEXT NOT NULL,                 -- YYYY-MM (UTC)
    dienststelle TEXT NOT NULL,
    mapping      TEXT NOT NULL,
    eingegangen  BIGINT NOT NULL,
    direkt       BIGINT NOT NULL,
    PRIMARY KEY (monat, dienststelle, mapping)
);
CREATE TABLE kennzahlen_eingang_monate (
    monat TEXT PRIMARY KEY
);
