-- One pending request per change (digest). A single process looks for an open request for a
-- change before opening one; two replicas can both look, both miss, and both open one. The
-- index makes the second insert fail, and the gateway then answers with the first request.
-- A pending request past its expiry leaves the index when the change is asked again (its
-- closed_at_ms is set to its expiry; it still reads as expired).

-- Expired pending requests leave the index now.
UPDATE approval_requests SET closed_at_ms = expires_at_ms
 WHERE state = 'pending' AND closed_at_ms IS NULL
   AND expires_at_ms <= (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT;

-- Live duplicates that race left: the newest stays, the older ones are cancelled.
UPDATE approval_requests SET state = 'cancelled', closed_by = 'keygate',
       closed_at_ms = (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT,
       outcome = 'a duplicate of a newer pending request for the same change'
 WHERE state = 'pending' AND closed_at_ms IS NULL
   AND EXISTS (SELECT 1 FROM approval_requests newer
                WHERE newer.digest = approval_requests.digest AND newer.state = 'pending'
                  AND newer.closed_at_ms IS NULL AND newer.id > approval_requests.id);

CREATE UNIQUE INDEX approval_requests_pending_digest ON approval_requests (digest)
 WHERE state = 'pending' AND closed_at_ms IS NULL;
