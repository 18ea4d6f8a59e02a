-- The PostgreSQL twin of sqlite/0036_material_expiry.sql.
ALTER TABLE key_copies ADD COLUMN material_validity_ms BIGINT;
ALTER TABLE key_copies ADD COLUMN material_expires_at_ms BIGINT;
