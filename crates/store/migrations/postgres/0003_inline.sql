-- Keep compressed bodies, findings and records inline in the heap instead of
-- moving them to the TOAST table: with the default target (about 2 kB) most
-- applications and records were stored out of line, which cost PostgreSQL a
-- second heap insert and a second index insert per value (about a sixth of
-- its CPU while a backlog drains). Values are still compressed (lz4) once a
-- row exceeds the target; only rows that stay larger go out of line.
ALTER TABLE applications SET (toast_tuple_target = 4080);
ALTER TABLE records SET (toast_tuple_target = 4080);
