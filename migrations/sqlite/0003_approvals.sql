-- Requests for critical actions waiting for a quorum of approvers, kept after they close
-- (they are the record of who asked, who approved and what was done).
CREATE TABLE approval_requests (
    id            TEXT PRIMARY KEY,
    action        TEXT NOT NULL,
    key_id        TEXT NOT NULL,
    key_name      TEXT NOT NULL,
    environment   TEXT NOT NULL,
    change        TEXT NOT NULL,   -- JSON: the parameters the action runs with
    requester     TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    state         TEXT NOT NULL,   -- pending | executed | failed | denied | cancelled
    approvals     TEXT NOT NULL,   -- JSON: [{principal, at_ms}]
    closed_by     TEXT,
    closed_at_ms  INTEGER,
    outcome       TEXT             -- what execution or closing said
);
CREATE INDEX approval_requests_by_key ON approval_requests (key_id);

-- What was destroyed, how, and on whose request and approvals; kept after the material is gone.
CREATE TABLE destruction_records (
    key_id          TEXT PRIMARY KEY,
    key_name        TEXT NOT NULL,
    provider        TEXT NOT NULL,
    provider_uri    TEXT NOT NULL,
    versions        TEXT NOT NULL,  -- JSON: [version numbers]
    requested_by    TEXT NOT NULL,
    approved_by     TEXT NOT NULL,  -- JSON: [principal names]
    approval_id     TEXT,
    scheduled_at_ms INTEGER,
    destroyed_at_ms INTEGER NOT NULL,
    method          TEXT NOT NULL
);
