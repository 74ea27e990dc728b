-- The dead-letter log answers `dlq list` and `dlq show` on its own (they no
-- longer read the queue): the body's size in bytes joins its hash. NULL for
-- rows logged before this migration.
ALTER TABLE dead_letters ADD COLUMN body_bytes INTEGER;
