-- The PostgreSQL twin of sqlite/0035_destruction_copies.sql.
ALTER TABLE destruction_records ADD COLUMN copies TEXT;
