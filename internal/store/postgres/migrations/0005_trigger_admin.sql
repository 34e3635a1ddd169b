-- A trigger's life after creation: its previous secret, kept for an overlap
-- after a rotation, and the log of its attempts.

ALTER TABLE herald.triggers
	ADD COLUMN previous_secret text NOT NULL DEFAULT '',
	-- Deliveries are signed with previous_secret too while this is in the
	-- future; NULL when there is none.
	ADD COLUMN previous_secret_until timestamptz;

-- One row per attempt, written by Settle in the attempt's statement, or for
-- a test delivery. Pruned with the deliveries (PruneDeliveries).
CREATE TABLE herald.attempts (
	seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	trigger_id  text COLLATE "C" NOT NULL REFERENCES herald.triggers (id) ON DELETE CASCADE,
	delivery_id text COLLATE "C" NOT NULL,
	at          timestamptz NOT NULL,
	status      integer NOT NULL,
	error       text NOT NULL,
	duration_us bigint NOT NULL,
	-- When the delivery is due again; NULL when it is not.
	next_at     timestamptz,
	test        boolean NOT NULL DEFAULT false
);

-- Attempts: a trigger's newest first; also the cascade from triggers.
CREATE INDEX attempts_trigger ON herald.attempts (trigger_id, seq);
-- PruneDeliveries.
CREATE INDEX attempts_at ON herald.attempts (at);
