-- A trigger's life after creation: its previous secret, kept for an overlap
-- after a rotation, and the log of its attempts. Times are INTEGER unix
-- nanoseconds, UTC.

ALTER TABLE triggers ADD COLUMN previous_secret TEXT NOT NULL DEFAULT '';
-- Deliveries are signed with previous_secret too while this is in the future.
ALTER TABLE triggers ADD COLUMN previous_secret_until INTEGER NOT NULL DEFAULT 0;

-- One row per attempt, written by Settle in the attempt's transaction, or
-- for a test delivery. Pruned with the deliveries (PruneDeliveries).
CREATE TABLE attempts (
	seq         INTEGER PRIMARY KEY,
	trigger_id  TEXT NOT NULL REFERENCES triggers (id) ON DELETE CASCADE,
	delivery_id TEXT NOT NULL,
	at          INTEGER NOT NULL,
	status      INTEGER NOT NULL,
	error       TEXT NOT NULL,
	duration    INTEGER NOT NULL,
	-- When the delivery is due again; NULL when it is not.
	next_at     INTEGER,
	test        INTEGER NOT NULL DEFAULT 0 CHECK (test IN (0, 1))
) STRICT;

-- Attempts: a trigger's newest first; also the cascade from triggers.
CREATE INDEX attempts_trigger ON attempts (trigger_id, seq);
-- PruneDeliveries.
CREATE INDEX attempts_at ON attempts (at);
