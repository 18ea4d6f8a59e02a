-- The key catalog: every key keygate manages, with its owner and crypto-period.
CREATE TABLE keys (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL UNIQUE,
    owner               TEXT NOT NULL CHECK (owner <> ''),
    purpose             TEXT NOT NULL,
    environment         TEXT NOT NULL,
    algorithm           TEXT NOT NULL,
    provider            TEXT NOT NULL,
    provider_uri        TEXT NOT NULL,
    state               TEXT NOT NULL,
    crypto_period_secs  INTEGER NOT NULL CHECK (crypto_period_secs > 0),
    created_at_ms       INTEGER NOT NULL,
    rotation_due_at_ms  INTEGER NOT NULL,
    destruction_at_ms   INTEGER,
    labels              TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE key_versions (
    key_id            TEXT NOT NULL REFERENCES keys (id),
    version           INTEGER NOT NULL,
    provider_version  TEXT NOT NULL,
    created_at_ms     INTEGER NOT NULL,
    PRIMARY KEY (key_id, version)
);

-- The audit log: one row per call, each hashing the one before.
CREATE TABLE audit_events (
    sequence             INTEGER PRIMARY KEY,
    time_ms              INTEGER NOT NULL,
    source               TEXT NOT NULL,
    actor                TEXT NOT NULL,
    action               TEXT NOT NULL,
    key_id               TEXT NOT NULL,
    key_name             TEXT NOT NULL,
    key_version          INTEGER NOT NULL,
    outcome              TEXT NOT NULL,
    reason               TEXT NOT NULL,
    policy               TEXT NOT NULL,
    request_id           TEXT NOT NULL,
    provider_request_id  TEXT NOT NULL,
    client_address       TEXT NOT NULL,
    details              TEXT NOT NULL,
    previous_hash        TEXT NOT NULL,
    hash                 TEXT NOT NULL
);

CREATE INDEX audit_events_by_time ON audit_events (time_ms);
CREATE INDEX audit_events_by_key ON audit_events (key_id, sequence);
CREATE INDEX audit_events_by_actor ON audit_events (actor, sequence);
CREATE INDEX audit_events_by_request ON audit_events (request_id);
