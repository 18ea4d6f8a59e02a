-- One catalog key per provider key. A single process keeps two adoptions of one provider key
-- apart in memory; replicas need the database to: two catalog keys over one key's material
-- would let destroying one destroy the other.
CREATE UNIQUE INDEX keys_by_provider_uri ON keys (provider, provider_uri);
