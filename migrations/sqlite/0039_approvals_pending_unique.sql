-- One pending request per change (digest), as on PostgreSQL (its 0039): one SQL text opens
-- requests on both databases, and relies on the index when two openings race. A pending
-- request past its expiry leaves the index when the change is asked again (its closed_at_ms
-- is set to its expiry; it still reads as expired).

-- Expired pending requests leave the index now.
UPDATE approval_requests SET closed_at_ms = expires_at_ms
 WHERE state = 'pending' AND closed_at_ms IS NULL
   AND expires_at_ms <= CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER);

-- Live duplicates that race left: the newest stays, the older ones are cancelled.
UPDATE approval_requests SET state = 'cancelled', closed_by = 'keygate',
       closed_at_ms = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER),
       outcome = 'a duplicate of a newer pending request for the same change'
 WHERE state = 'pending' AND closed_at_ms IS NULL
   AND EXISTS (SELECT 1 FROM approval_requests newer
                WHERE newer.digest = approval_requests.digest AND newer.state = 'pending'
                  AND newer.closed_at_ms IS NULL AND newer.id > approval_requests.id);

CREATE UNIQUE INDEX approval_requests_pending_digest ON approval_requests (digest)
 WHERE state = 'pending' AND closed_at_ms IS NULL;
