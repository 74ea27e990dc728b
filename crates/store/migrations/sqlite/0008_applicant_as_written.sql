-- The applicant's name is kept as written, for display (it was stored
-- lower-cased and shown title-cased, which lost its spelling: "McDonald"
-- became "Mcdonald"); the lower-cased form the search matches moves to
-- applicant_key (Rust's Unicode lower-casing, as the store writes it).
-- Old rows: the key is the old column; the name is read again from the
-- application (corrected if it was), where that is valid JSON.
-- Keep in step with migrations/postgres/0010_applicant_as_written.sql.
ALTER TABLE cases ADD COLUMN applicant_key TEXT;
UPDATE cases SET applicant_key = applicant WHERE applicant IS NOT NULL;
UPDATE cases SET applicant = coalesce((
    SELECT NULLIF(trim(
        coalesce(json_extract(j.doc, '$.antragsteller.vornamen'), '') || ' ' ||
        coalesce(json_extract(j.doc, '$.antragsteller.familienname'), '')), '')
    FROM (SELECT CAST(coalesce(cases.corrected_body, a.body) AS TEXT) AS doc
          FROM applications a WHERE a.antrag_id = cases.antrag_id) j
    WHERE json_valid(j.doc)), applicant)
WHERE applicant IS NOT NULL;
