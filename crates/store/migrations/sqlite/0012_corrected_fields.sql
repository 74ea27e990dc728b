-- Kennzahlen (issue #22): the fields caseworkers corrected, kept on the
-- case (`,/p1,/p2,` like intake_rules), so the figures count them from the
-- cases alone instead of joining every edit in the audit log. Written with
-- each draft's audit entries (Store::save_case_draft); kept by retention
-- (pointers only, no values). Keep in step with
-- migrations/postgres/0014_corrected_fields.sql.
ALTER TABLE cases ADD COLUMN corrected_fields TEXT NOT NULL DEFAULT '';
UPDATE cases SET corrected_fields = coalesce((
    SELECT ',' || group_concat(pointer, ',') || ','
    FROM (SELECT DISTINCT pointer FROM audit
          WHERE audit.antrag_id = cases.antrag_id AND action = 'edit' AND pointer IS NOT NULL
          ORDER BY pointer)), '');
