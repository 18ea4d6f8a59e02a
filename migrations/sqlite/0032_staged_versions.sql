-- Staged rotation of signing keys: while a newer version is staged (published, not yet
-- signing), the version that still signs. NULL: the newest version is the primary.
ALTER TABLE keys ADD COLUMN primary_version INTEGER;
