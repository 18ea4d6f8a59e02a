-- Retirement: versions below `retired_below` no longer decrypt or verify (0: none retired).
ALTER TABLE keys ADD COLUMN retired_below INTEGER NOT NULL DEFAULT 0;
-- Short-lived keys: when the scheduler destroys the key (NULL: no TTL).
ALTER TABLE keys ADD COLUMN expires_at_ms INTEGER;
