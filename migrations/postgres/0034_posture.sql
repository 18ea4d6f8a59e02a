-- The PostgreSQL twin of sqlite/0034_posture.sql (types as in 0033_schema.sql).
-- Key posture: inventory scans across every provider instance, and the findings they raise.

-- One scan: when it ran and what it saw.
CREATE TABLE posture_scans (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at_ms  BIGINT NOT NULL,
    finished_at_ms BIGINT NOT NULL,
    started_by     TEXT NOT NULL,
    keys           BIGINT NOT NULL,
    unmanaged      BIGINT NOT NULL
);

-- Each provider instance's listing in a scan: how many keys and how long it took, or why it
-- failed (then its keys are not in the scan, and its findings are neither opened nor closed).
CREATE TABLE posture_listings (
    scan_id    BIGINT NOT NULL REFERENCES posture_scans(id),
    provider   TEXT NOT NULL,
    keys       BIGINT NOT NULL,
    elapsed_ms BIGINT NOT NULL,
    error      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (scan_id, provider)
);

-- Every key a provider listed in a scan. `change` is 'appeared' when the provider's previous
-- successful listing did not have it, '' otherwise; keys that vanished are kept as rows with
-- `change` = 'vanished' so a snapshot alone shows both.
CREATE TABLE posture_inventory (
    scan_id      BIGINT NOT NULL REFERENCES posture_scans(id),
    provider     TEXT NOT NULL,
    provider_uri TEXT NOT NULL,
    algorithm    TEXT NOT NULL DEFAULT '',
    state        TEXT NOT NULL,
    -- The catalog's key id when keygate manages the key; '' otherwise.
    key_id       TEXT NOT NULL DEFAULT '',
    change       TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (scan_id, provider, provider_uri)
);

-- A finding: one rule broken by one subject (a catalog key id, or a provider URI for a key
-- keygate does not manage). Open while `closed_at_ms` is NULL; at most one open finding per
-- rule and subject.
CREATE TABLE posture_findings (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule            TEXT NOT NULL,
    severity        TEXT NOT NULL,
    subject         TEXT NOT NULL,
    provider        TEXT NOT NULL,
    provider_uri    TEXT NOT NULL DEFAULT '',
    key_id          TEXT NOT NULL DEFAULT '',
    key_name        TEXT NOT NULL DEFAULT '',
    evidence        TEXT NOT NULL,
    opened_at_ms    BIGINT NOT NULL,
    last_seen_ms    BIGINT NOT NULL,
    closed_at_ms    BIGINT,
    closed_because  TEXT NOT NULL DEFAULT '',
    acked_by        TEXT NOT NULL DEFAULT '',
    acked_at_ms     BIGINT,
    ack_reason      TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX posture_findings_open ON posture_findings (rule, subject)
    WHERE closed_at_ms IS NULL;
