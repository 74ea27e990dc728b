-- Kennzahlen (issue #22): what the figures need beyond the tables as they
-- are. Keep in step with migrations/postgres/0013_kennzahlen.sql.
--
-- The rules a case was opened for (`,r1,r2,` like error_rules, which a
-- release empties); set once when the case is stored, kept by retention.
ALTER TABLE cases ADD COLUMN intake_rules TEXT NOT NULL DEFAULT '';
UPDATE cases SET intake_rules = coalesce((
    SELECT ',' || group_concat(r, ',') || ','
    FROM (SELECT DISTINCT json_extract(j.value, '$.rule') AS r
          FROM applications a,
               json_each(CASE WHEN json_valid(a.findings) THEN a.findings ELSE '[]' END) j
          WHERE a.antrag_id = cases.antrag_id
            AND json_extract(j.value, '$.severity') = 'error'
          ORDER BY r)), '');

-- Dead-letter log rows a purge deleted, counted per month (UTC) of their
-- first sighting, so a month's figures stay the same after its purge.
CREATE TABLE dead_letters_purged (
    month TEXT PRIMARY KEY,                     -- YYYY-MM
    count INTEGER NOT NULL
);

-- The figures scan applications by receipt; the covering index keeps the
-- scan off the table rows (bodies).
CREATE INDEX applications_received ON applications (created_at, dienststellennummer, outcome, mapping, antrag_id);
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
    eingegangen  INTEGER NOT NULL,
    direkt       INTEGER NOT NULL,
    PRIMARY KEY (monat, dienststelle, mapping)
);
CREATE TABLE kennzahlen_eingang_monate (
    monat TEXT PRIMARY KEY
);
