-- Kennzahlen (issue #22): the fields caseworkers corrected, kept on the
-- case (`,/p1,/p2,` like intake_rules), so the figures count them from the
-- cases alone instead of joining every edit in the audit log. Written with
-- each draft's audit entries (Store::save_case_draft); kept by retention
-- (pointers only, no values). Keep in step with
-- migrations/sqlite/0012_corrected_fields.sql.
ALTER TABLE cases ADD COLUMN corrected_fields TEXT NOT NULL DEFAULT '';
UPDATE cases c SET corrected_fields = e.list
FROM (SELECT antrag_id, ',' || string_agg(DISTINCT pointer, ',' ORDER BY pointer) || ',' AS list
      FROM audit WHERE action = 'edit' AND pointer IS NOT NULL GROUP BY antrag_id) e
WHERE e.antrag_id = c.antrag_id;
