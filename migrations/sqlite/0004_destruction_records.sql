-- Each scheduled destruction of a key, from its scheduling to the destruction of the material
-- (or its cancellation): who asked, who approved, when, which versions, how. Kept after the
-- key material is gone: the evidence auditors ask for.
CREATE TABLE destruction_records (
    id                   TEXT PRIMARY KEY,   -- the scheduling call's request id
    key_id               TEXT NOT NULL,
    key_name             TEXT NOT NULL,
    environment          TEXT NOT NULL,
    provider             TEXT NOT NULL,
    provider_uri         TEXT NOT NULL,
    requested_by         TEXT NOT NULL,
    approval_id          TEXT,               -- the approval request, when one was needed
    approved_by          TEXT NOT NULL,      -- JSON: [principal names]
    window_seconds       INTEGER NOT NULL,
    scheduled_at_ms      INTEGER NOT NULL,
    destruction_at_ms    INTEGER NOT NULL,
    state                TEXT NOT NULL,      -- scheduled | cancelled | destroyed
    cancelled_by         TEXT,
    cancelled_at_ms      INTEGER,
    destroyed_at_ms      INTEGER,
    destroy_call_id      TEXT,               -- the scheduler's DestroyKey call
    versions             TEXT,               -- JSON: [version numbers destroyed]
    method               TEXT
);
CREATE INDEX destruction_records_by_key ON destruction_records (key_id, scheduled_at_ms);
