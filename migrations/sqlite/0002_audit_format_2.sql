-- Audit events of format 2: who the actor is (user, service account, system, …), the
-- failure's stable reason code, and whether the client had gone before the call ended. The
-- hash of a format-2 event covers these too; older rows keep format 1 and their hashes.
ALTER TABLE audit_events ADD COLUMN format INTEGER NOT NULL DEFAULT 1;
ALTER TABLE audit_events ADD COLUMN actor_kind TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_events ADD COLUMN error_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_events ADD COLUMN caller_gone INTEGER NOT NULL DEFAULT 0;
