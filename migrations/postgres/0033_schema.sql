-- The whole schema of the SQLite migrations up to 0033, in one step: PostgreSQL support began
-- at that point. Later migrations keep the same number on both stores. Types: SQLite INTEGER
-- becomes BIGINT (times in ms, sequences), 0/1 flags stay integers so both stores share the
-- queries that read them.

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
    crypto_period_secs  BIGINT NOT NULL CHECK (crypto_period_secs > 0),
    created_at_ms       BIGINT NOT NULL,
    rotation_due_at_ms  BIGINT NOT NULL,
    destruction_at_ms   BIGINT,
    labels              TEXT NOT NULL DEFAULT '{}',
    retired_below       BIGINT NOT NULL DEFAULT 0,
    expires_at_ms       BIGINT,
    primary_version     BIGINT
);

CREATE TABLE key_versions (
    key_id            TEXT NOT NULL REFERENCES keys (id),
    version           BIGINT NOT NULL,
    provider_version  TEXT NOT NULL,
    created_at_ms     BIGINT NOT NULL,
    PRIMARY KEY (key_id, version)
);

CREATE TABLE audit_events (
    sequence             BIGINT PRIMARY KEY,
    time_ms              BIGINT NOT NULL,
    source               TEXT NOT NULL,
    actor                TEXT NOT NULL,
    action               TEXT NOT NULL,
    key_id               TEXT NOT NULL,
    key_name             TEXT NOT NULL,
    key_version          BIGINT NOT NULL,
    outcome              TEXT NOT NULL,
    reason               TEXT NOT NULL,
    policy               TEXT NOT NULL,
    request_id           TEXT NOT NULL,
    provider_request_id  TEXT NOT NULL,
    client_address       TEXT NOT NULL,
    details              TEXT NOT NULL,
    previous_hash        TEXT NOT NULL,
    hash                 TEXT NOT NULL,
    format               BIGINT NOT NULL DEFAULT 1,
    actor_kind           TEXT NOT NULL DEFAULT '',
    error_reason         TEXT NOT NULL DEFAULT '',
    caller_gone          BIGINT NOT NULL DEFAULT 0,
    key_uri              TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_events_by_time ON audit_events (time_ms);
CREATE INDEX audit_events_by_request ON audit_events (request_id);
CREATE INDEX audit_events_by_key_time ON audit_events (key_id, time_ms);
CREATE INDEX audit_events_by_actor_time ON audit_events (actor, time_ms);
CREATE INDEX audit_events_by_key_name ON audit_events (key_name, time_ms) WHERE key_id = '';
CREATE INDEX audit_events_by_key_uri ON audit_events (key_uri, time_ms) WHERE source <> 'gateway';

-- The head of the one audit chain every replica appends to (the PostgreSQL audit writer is
-- still to come): a single row, to be locked (SELECT ... FOR UPDATE) inside each replica's
-- group-commit transaction, so sequence numbers and previous-hash links are handed out in one
-- total order. A row lock rather than an
-- advisory lock: it is released by the commit or rollback itself, it is visible in
-- pg_locks/pg_stat_activity like any other wait, and the row carries the head the next batch
-- links to, so no replica trusts a cached head after another one appended.
CREATE TABLE audit_chain_head (
    id        SMALLINT PRIMARY KEY CHECK (id = 1),
    sequence  BIGINT NOT NULL,
    hash      TEXT NOT NULL
);

CREATE TABLE audit_provider_request_ids (
    provider_request_id  TEXT NOT NULL,
    sequence             BIGINT NOT NULL,
    PRIMARY KEY (provider_request_id, sequence)
);

CREATE TABLE audit_checkpoints (
    sequence         BIGINT PRIMARY KEY,
    head_hash        TEXT NOT NULL,
    time_ms          BIGINT NOT NULL,
    previous_digest  TEXT NOT NULL,
    key_id           TEXT NOT NULL,
    key_name         TEXT NOT NULL,
    key_version      BIGINT NOT NULL,
    algorithm        TEXT NOT NULL,
    public_key       TEXT NOT NULL,
    signature        TEXT NOT NULL,
    witnessed        BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE audit_ingested (
    sequence             BIGINT PRIMARY KEY,
    source               TEXT NOT NULL,
    record_id            TEXT NOT NULL,
    feed                 TEXT NOT NULL,
    provider_request_id  TEXT NOT NULL,
    gateway_sequence     BIGINT,
    bypass               BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX audit_ingested_by_record ON audit_ingested (source, record_id);
CREATE INDEX audit_ingested_by_gateway ON audit_ingested (gateway_sequence)
    WHERE gateway_sequence IS NOT NULL;
CREATE INDEX audit_ingested_bypass ON audit_ingested (sequence) WHERE bypass = 1;
CREATE INDEX audit_ingested_by_provider_request ON audit_ingested (provider_request_id)
    WHERE provider_request_id <> '';

CREATE TABLE audit_ingest_cursors (
    feed            TEXT PRIMARY KEY,
    position        TEXT NOT NULL,
    ingested        BIGINT NOT NULL DEFAULT 0,
    linked          BIGINT NOT NULL DEFAULT 0,
    bypass          BIGINT NOT NULL DEFAULT 0,
    ignored         BIGINT NOT NULL DEFAULT 0,
    duplicates      BIGINT NOT NULL DEFAULT 0,
    malformed       BIGINT NOT NULL DEFAULT 0,
    last_malformed  TEXT NOT NULL DEFAULT '',
    updated_ms      BIGINT NOT NULL
);

CREATE TABLE audit_state (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

CREATE TABLE approval_requests (
    id                TEXT PRIMARY KEY,
    action            TEXT NOT NULL,
    key_id            TEXT NOT NULL,
    key_name          TEXT NOT NULL,
    environment       TEXT NOT NULL,
    change            TEXT NOT NULL,
    digest            TEXT NOT NULL,
    requester         TEXT NOT NULL,
    request_call_id   TEXT NOT NULL,
    quorum            BIGINT NOT NULL,
    created_at_ms     BIGINT NOT NULL,
    expires_at_ms     BIGINT NOT NULL,
    state             TEXT NOT NULL,
    approvals         TEXT NOT NULL,
    closed_by         TEXT,
    closed_at_ms      BIGINT,
    outcome           TEXT,
    execution_call_id TEXT
);
CREATE INDEX approval_requests_by_key ON approval_requests (key_id, state);
CREATE INDEX approval_requests_by_digest ON approval_requests (digest, state);

CREATE TABLE destruction_records (
    id                   TEXT PRIMARY KEY,
    key_id               TEXT NOT NULL,
    key_name             TEXT NOT NULL,
    environment          TEXT NOT NULL,
    provider             TEXT NOT NULL,
    provider_uri         TEXT NOT NULL,
    requested_by         TEXT NOT NULL,
    approval_id          TEXT,
    approved_by          TEXT NOT NULL,
    window_seconds       BIGINT NOT NULL,
    scheduled_at_ms      BIGINT NOT NULL,
    destruction_at_ms    BIGINT NOT NULL,
    state                TEXT NOT NULL,
    cancelled_by         TEXT,
    cancelled_at_ms      BIGINT,
    destroyed_at_ms      BIGINT,
    destroy_call_id      TEXT,
    versions             TEXT,
    method               TEXT,
    checklist            TEXT
);
CREATE INDEX destruction_records_by_key ON destruction_records (key_id, scheduled_at_ms);

CREATE TABLE key_families (
    key_id        TEXT PRIMARY KEY NOT NULL REFERENCES keys (id),
    state         TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE key_copies (
    family_key_id        TEXT NOT NULL REFERENCES key_families (key_id),
    provider             TEXT NOT NULL,
    provider_kind        TEXT NOT NULL,
    status               TEXT NOT NULL,
    copy_key_id          TEXT,
    provider_uri         TEXT NOT NULL DEFAULT '',
    import_method        TEXT NOT NULL,
    wrapping_key_id      TEXT NOT NULL DEFAULT '',
    ephemeral_left_hsm   BIGINT NOT NULL DEFAULT 0,
    imported_at_ms       BIGINT,
    imported_by          TEXT NOT NULL DEFAULT '',
    import_expires_at_ms BIGINT,
    error                TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (family_key_id, provider)
);
