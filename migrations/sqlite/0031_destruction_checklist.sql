-- The destruction checklist a scheduling ran through (quiet period, copies, authorization,
-- public keys), as JSON: [{"check": "...", "result": "..."}]. Empty for records kept before.
ALTER TABLE destruction_records ADD COLUMN checklist TEXT;
