-- When the last failed login of an account or unknown name was: a count
-- whose last failure is older than users::FAILURE_MEMORY starts again at 1,
-- and the retention purge deletes name_failures rows (and login_failures
-- rows, which hold client addresses) once their last failure is that old.
-- Rows from before this migration have no time and count as old.
-- Keep in step with migrations/sqlite/0007_failure_memory.sql.
ALTER TABLE users ADD COLUMN last_failed_login_at TIMESTAMPTZ;
ALTER TABLE name_failures ADD COLUMN last_failure_at TIMESTAMPTZ;
