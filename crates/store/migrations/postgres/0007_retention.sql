-- Retention (`allegro-bridge purge`, the daemon's periodic purge): a purged
-- application keeps its row (antragId, outcome, rule ids, timestamps) with
-- an empty body; purged_at says when its personal data was removed.
-- Keep in step with migrations/sqlite/0005_retention.sql.
ALTER TABLE applications ADD COLUMN purged_at TIMESTAMPTZ;
-- What the purge looks for: applications not yet purged, by age.
CREATE INDEX applications_unpurged ON applications (created_at) WHERE purged_at IS NULL;
-- Dead-letter log rows by age.
CREATE INDEX dead_letters_first_seen ON dead_letters (first_seen);
