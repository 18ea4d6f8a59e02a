-- Requests for critical actions waiting for a quorum of approvers, kept after they close:
-- they are the record of who asked, who approved, what exactly was approved and how it ended.
CREATE TABLE approval_requests (
    id                TEXT PRIMARY KEY,   -- UUIDv7: ids sort by time
    action            TEXT NOT NULL,
    key_id            TEXT NOT NULL,
    key_name          TEXT NOT NULL,
    environment       TEXT NOT NULL,
    change            TEXT NOT NULL,      -- JSON: the parameters the change runs with
    digest            TEXT NOT NULL,      -- SHA-256 binding change, key, action and requester
    requester         TEXT NOT NULL,
    request_call_id   TEXT NOT NULL,      -- the call that opened it (its audit event)
    quorum            INTEGER NOT NULL,
    created_at_ms     INTEGER NOT NULL,
    expires_at_ms     INTEGER NOT NULL,
    state             TEXT NOT NULL,      -- pending | approved | executed | failed | denied | cancelled
    approvals         TEXT NOT NULL,      -- JSON: [{principal, at_ms, digest, call_id}]
    closed_by         TEXT,
    closed_at_ms      INTEGER,
    outcome           TEXT,
    execution_call_id TEXT                -- the call that carried it out (intent and outcome events)
);
CREATE INDEX approval_requests_by_key ON approval_requests (key_id, state);
CREATE INDEX approval_requests_by_digest ON approval_requests (digest, state);
