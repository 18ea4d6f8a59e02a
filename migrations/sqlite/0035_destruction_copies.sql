-- A BYOK family destroyed as a whole: the original's record lists each copy destroyed with
-- it, as JSON: [{"key_id", "key_name", "provider", "provider_kind", "provider_uri",
-- "import_method", "method"}]. Empty for other destructions and records kept before.
ALTER TABLE destruction_records ADD COLUMN copies TEXT;
