-- BYOK copies whose imported material expires in the target (AWS KMS `ValidTo`): the
-- lifetime asked for at import (kept by retries and re-imports) and when the material
-- expires. Empty for material that does not expire and for copies recorded before.
ALTER TABLE key_copies ADD COLUMN material_validity_ms INTEGER;
ALTER TABLE key_copies ADD COLUMN material_expires_at_ms INTEGER;
