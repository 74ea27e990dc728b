-- The applicant's name is kept as written, for display (it was stored
-- lower-cased and shown title-cased, which lost its spelling: "McDonald"
-- became "Mcdonald"); the lower-cased form the search matches moves to
-- applicant_key (Rust's Unicode lower-casing, as the store writes it).
-- Old rows: the key is the old column; the name is read again from the
-- application (corrected if it was), row by row so that a body that is not
-- valid JSON keeps the old value instead of stopping the upgrade.
-- Keep in step with migrations/sqlite/0008_applicant_as_written.sql.
ALTER TABLE cases ADD COLUMN applicant_key TEXT;
UPDATE cases SET applicant_key = applicant WHERE applicant IS NOT NULL;
DO $$
DECLARE r RECORD;
BEGIN
    FOR r IN SELECT antrag_id FROM cases WHERE applicant IS NOT NULL LOOP
        BEGIN
            UPDATE cases c SET
                applicant = coalesce(NULLIF(trim(
                    coalesce(j.doc #>> '{antragsteller,vornamen}', '') || ' ' ||
                    coalesce(j.doc #>> '{antragsteller,familienname}', '')), ''), c.applicant)
            FROM (SELECT convert_from(coalesce(c2.corrected_body, a.body), 'UTF8')::jsonb AS doc
                  FROM applications a JOIN cases c2 ON c2.antrag_id = a.antrag_id
                  WHERE a.antrag_id = r.antrag_id) j
            WHERE c.antrag_id = r.antrag_id;
        EXCEPTION WHEN others THEN
            NULL;
        END;
    END LOOP;
END
$$;
