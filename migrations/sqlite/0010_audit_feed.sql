-- The unified audit feed: events of format 3 (the key's provider URI), queries in time order,
-- signed checkpoints, provider records brought in by ingesters and their cursors.

-- Format 3: the key as its provider names it, so an event stands alone once the key is gone.
-- Format-3 hashes cover it; older rows keep their format and hashes.
ALTER TABLE audit_events ADD COLUMN key_uri TEXT NOT NULL DEFAULT '';

-- Queries return events in time order (then sequence): a key's or an actor's events over a
-- time window are one index range, however many events the key has outside it. These replace
-- the (key_id, sequence) and (actor, sequence) indexes, so an append updates as many indexes
-- as before; the two partial indexes below skip gateway events with a key id.
DROP INDEX audit_events_by_key;
DROP INDEX audit_events_by_actor;
CREATE INDEX audit_events_by_key_time ON audit_events (key_id, time_ms);
CREATE INDEX audit_events_by_actor_time ON audit_events (actor, time_ms);
-- Events that name a key without an id (a key that was not found): few.
CREATE INDEX audit_events_by_key_name ON audit_events (key_name, time_ms) WHERE key_id = '';
-- Provider records by the provider's key URI (keys keygate does not manage have no key id).
CREATE INDEX audit_events_by_key_uri ON audit_events (key_uri, time_ms) WHERE source <> 'gateway';

-- Every request id a backend answered a gateway call with, pointing at that call's event: how
-- a provider's own record of the request finds the call. Written with the event, only for
-- calls that reached a remote backend.
CREATE TABLE audit_provider_request_ids (
    provider_request_id  TEXT NOT NULL,
    sequence             INTEGER NOT NULL,
    PRIMARY KEY (provider_request_id, sequence)
) WITHOUT ROWID;

-- Signed checkpoints: (sequence, head hash, time, previous checkpoint) signed with the audit
-- signing key, also copied to the witness outside this database.
CREATE TABLE audit_checkpoints (
    sequence         INTEGER PRIMARY KEY,
    head_hash        TEXT NOT NULL,
    time_ms          INTEGER NOT NULL,
    previous_digest  TEXT NOT NULL,
    key_id           TEXT NOT NULL,
    key_name         TEXT NOT NULL,
    key_version      INTEGER NOT NULL,
    algorithm        TEXT NOT NULL,
    -- DER SubjectPublicKeyInfo of the signing key version, base64.
    public_key       TEXT NOT NULL,
    signature        TEXT NOT NULL,
    -- Whether every configured witness holds it (retried until it does).
    witnessed        INTEGER NOT NULL DEFAULT 0
);

-- Provider records brought in by ingesters (the events themselves are in audit_events): the
-- record's own id (never ingested twice), and its link to the gateway call or its bypass
-- finding. Derived: the same facts are in the event's hashed details.
CREATE TABLE audit_ingested (
    sequence             INTEGER PRIMARY KEY,
    source               TEXT NOT NULL,
    record_id            TEXT NOT NULL,
    feed                 TEXT NOT NULL,
    provider_request_id  TEXT NOT NULL,
    gateway_sequence     INTEGER,
    bypass               INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX audit_ingested_by_record ON audit_ingested (source, record_id);
CREATE INDEX audit_ingested_by_gateway ON audit_ingested (gateway_sequence)
    WHERE gateway_sequence IS NOT NULL;
CREATE INDEX audit_ingested_bypass ON audit_ingested (sequence) WHERE bypass = 1;
CREATE INDEX audit_ingested_by_provider_request ON audit_ingested (provider_request_id)
    WHERE provider_request_id <> '';

-- Where each ingester is in its input, committed with the events it produced.
CREATE TABLE audit_ingest_cursors (
    feed            TEXT PRIMARY KEY,
    position        TEXT NOT NULL,
    ingested        INTEGER NOT NULL DEFAULT 0,
    linked          INTEGER NOT NULL DEFAULT 0,
    bypass          INTEGER NOT NULL DEFAULT 0,
    ignored         INTEGER NOT NULL DEFAULT 0,
    duplicates      INTEGER NOT NULL DEFAULT 0,
    malformed       INTEGER NOT NULL DEFAULT 0,
    last_malformed  TEXT NOT NULL DEFAULT '',
    updated_ms      INTEGER NOT NULL
);

-- Small facts about the log: `pruned_through` (retention removed events up to a checkpoint).
CREATE TABLE audit_state (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
