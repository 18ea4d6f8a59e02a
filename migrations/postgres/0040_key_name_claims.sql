-- A key name held by a creation under way on some replica, from before the provider makes the
-- backend key until the catalog row is in. Without it two replicas creating one name would
-- both make a backend key, and the loser's would be left behind, managed by no one. A claim
-- whose replica died stays until it expires.
CREATE TABLE key_name_claims (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
