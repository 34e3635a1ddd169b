-- The key lifecycle. A revoked key keeps its row, with revoked_at set:
-- GetKey ignores it, and every node polls the revocation feed
-- (Revocations) through keys_revoked to drop the key from its caches.
-- last_used_at is written at most once a minute per key per node
-- (TouchKeys).

ALTER TABLE herald.keys
	ADD COLUMN revoked_at timestamptz,
	ADD COLUMN last_used_at timestamptz;

CREATE INDEX keys_revoked ON herald.keys (revoked_at) WHERE revoked_at IS NOT NULL;
