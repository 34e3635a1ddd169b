-- The durable path: webhook triggers, the outbox of their deliveries, and
-- the idempotency keys of publishes. Times are INTEGER unix nanoseconds,
-- UTC. SQLite finds the children of a deleted parent (ON DELETE CASCADE)
-- through an index on the child column, or else by scanning the table: each
-- foreign key column has one.

CREATE TABLE triggers (
	id         TEXT PRIMARY KEY,
	-- The topic's app, for lookups by app; the topic's foreign key is what
	-- deletes the trigger with its topic or app.
	app_id     TEXT NOT NULL,
	topic_id   INTEGER NOT NULL REFERENCES topics (id) ON DELETE CASCADE,
	url        TEXT NOT NULL,
	secret     TEXT NOT NULL,
	disabled   INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
	created_at INTEGER NOT NULL
) STRICT;

-- Publish reads a topic's triggers once per batch; ListTriggers lists them
-- oldest first.
CREATE INDEX triggers_topic ON triggers (topic_id, created_at);

-- One row per message per trigger. The message's body and stamp are copied:
-- history retention may prune the message before the last retry.
CREATE TABLE deliveries (
	id           TEXT PRIMARY KEY,
	trigger_id   TEXT NOT NULL REFERENCES triggers (id) ON DELETE CASCADE,
	app_id       TEXT NOT NULL,
	topic        TEXT NOT NULL,
	message_id   INTEGER NOT NULL,
	body         BLOB NOT NULL,
	published_at INTEGER NOT NULL,
	state        TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
	attempts     INTEGER NOT NULL DEFAULT 0,
	next_at      INTEGER NOT NULL,
	-- Set while a dispatcher holds the delivery; NULL otherwise.
	lease_until  INTEGER,
	last_status  INTEGER NOT NULL DEFAULT 0,
	last_error   TEXT NOT NULL DEFAULT '',
	created_at   INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL
) STRICT;

-- The indexes are partial where a query wants one state only: an index
-- that leaves out the rows it has no use for stays small, and a delivery
-- enters the dead or delivered index only when it gets there.

-- Claim: pending deliveries in the order they fall due.
CREATE INDEX deliveries_due ON deliveries (next_at) WHERE state = 'pending';
-- DeadLetters (newest first per app), and PruneDeliveries of dead ones.
CREATE INDEX deliveries_dead ON deliveries (app_id, updated_at) WHERE state = 'dead';
-- PruneDeliveries of delivered ones.
CREATE INDEX deliveries_delivered ON deliveries (updated_at) WHERE state = 'delivered';
-- ListTriggers' counts, and the cascade from triggers.
CREATE INDEX deliveries_trigger ON deliveries (trigger_id, state);

-- A publish's idempotency key, within its app, for IdempotencyWindow. The
-- row names the message; its body stays in messages (LEFT JOIN: Prune may
-- have deleted it). Deleting the topic forgets its keys.
CREATE TABLE idempotency (
	app_id       TEXT NOT NULL,
	key          TEXT NOT NULL,
	topic_id     INTEGER NOT NULL REFERENCES topics (id) ON DELETE CASCADE,
	message_id   INTEGER NOT NULL,
	published_at INTEGER NOT NULL,
	created_at   INTEGER NOT NULL,
	PRIMARY KEY (app_id, key)
) STRICT, WITHOUT ROWID;

CREATE INDEX idempotency_topic ON idempotency (topic_id);
CREATE INDEX idempotency_created ON idempotency (created_at);
