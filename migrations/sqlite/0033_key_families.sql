-- BYOK key families: a key generated in an HSM (the original, a row in `keys`) and every
-- copy imported elsewhere, so all copies can be found (and destroyed) together.
CREATE TABLE key_families (
    key_id        TEXT PRIMARY KEY NOT NULL REFERENCES keys(id),
    -- complete | incomplete
    state         TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);

CREATE TABLE key_copies (
    family_key_id        TEXT NOT NULL REFERENCES key_families(key_id),
    provider             TEXT NOT NULL,
    provider_kind        TEXT NOT NULL,
    -- imported | failed
    status               TEXT NOT NULL,
    -- The keygate key holding the copy; NULL until imported.
    copy_key_id          TEXT,
    provider_uri         TEXT NOT NULL DEFAULT '',
    import_method        TEXT NOT NULL,
    wrapping_key_id      TEXT NOT NULL DEFAULT '',
    -- 1: the ephemeral AES key (never the key itself) left the HSM for the OAEP step.
    ephemeral_left_hsm   INTEGER NOT NULL DEFAULT 0,
    imported_at_ms       INTEGER,
    imported_by          TEXT NOT NULL DEFAULT '',
    import_expires_at_ms INTEGER,
    error                TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (family_key_id, provider)
);
