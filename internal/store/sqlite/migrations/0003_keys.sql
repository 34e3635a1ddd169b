-- The key lifecycle. A revoked key keeps its row, with revoked_at set:
-- GetKey ignores it, and the revocation feed (Revocations) that other
-- readers of the database poll reads it through keys_revoked. last_used_at
-- is written at most once a minute per key per node (TouchKeys).

ALTER TABLE keys ADD COLUMN revoked_at INTEGER;
ALTER TABLE keys ADD COLUMN last_used_at INTEGER;

CREATE INDEX keys_revoked ON keys (revoked_at) WHERE revoked_at IS NOT NULL;
