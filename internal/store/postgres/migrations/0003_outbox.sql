-- The durable path: webhook triggers, the outbox of their deliveries, and
-- the idempotency keys of publishes. Postgres does not index the columns
-- that reference another table: each foreign key here has an index, so that
-- a cascading delete finds the children without a scan.

CREATE TABLE herald.triggers (
	id         text COLLATE "C" PRIMARY KEY,
	-- The topic's app, for lookups by app; the topic's foreign key is what
	-- deletes the trigger with its topic or app.
	app_id     text COLLATE "C" NOT NULL,
	topic_id   bigint NOT NULL REFERENCES herald.topics (id) ON DELETE CASCADE,
	url        text NOT NULL,
	secret     text NOT NULL,
	disabled   boolean NOT NULL DEFAULT false,
	created_at timestamptz NOT NULL,
	-- The order of creation, which breaks ties between equal created_at in
	-- ListTriggers.
	seq        bigint GENERATED ALWAYS AS IDENTITY
);

-- The publish transaction reads a topic's triggers once per batch;
-- ListTriggers lists them oldest first.
CREATE INDEX triggers_topic ON herald.triggers (topic_id, created_at, seq);

-- One row per message per trigger. The message's body and stamp are copied:
-- history retention may prune the message before the last retry.
CREATE TABLE herald.deliveries (
	id           text COLLATE "C" PRIMARY KEY,
	trigger_id   text COLLATE "C" NOT NULL REFERENCES herald.triggers (id) ON DELETE CASCADE,
	app_id       text COLLATE "C" NOT NULL,
	topic        text COLLATE "C" NOT NULL,
	message_id   bigint NOT NULL,
	body         bytea NOT NULL,
	published_at timestamptz NOT NULL,
	state        text NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
	attempts     integer NOT NULL DEFAULT 0,
	next_at      timestamptz NOT NULL,
	-- Set while a dispatcher holds the delivery; NULL otherwise.
	lease_until  timestamptz,
	last_status  integer NOT NULL DEFAULT 0,
	last_error   text NOT NULL DEFAULT '',
	created_at   timestamptz NOT NULL,
	updated_at   timestamptz NOT NULL
);

-- The indexes are partial where a query wants one state only: an index
-- that leaves out the rows it has no use for stays small, and a delivery
-- enters the dead or delivered index only when it gets there.

-- Claim: pending deliveries in the order they fall due.
CREATE INDEX deliveries_due ON herald.deliveries (next_at, id) WHERE state = 'pending';
-- DeadLetters (newest first per app), and PruneDeliveries of dead ones.
CREATE INDEX deliveries_dead ON herald.deliveries (app_id, updated_at) WHERE state = 'dead';
-- PruneDeliveries of delivered ones.
CREATE INDEX deliveries_delivered ON herald.deliveries (updated_at) WHERE state = 'delivered';
-- ListTriggers' counts, and the cascade from triggers.
CREATE INDEX deliveries_trigger ON herald.deliveries (trigger_id, state);

-- A publish's idempotency key, within its app, for IdempotencyWindow. The
-- row names the message; its body stays in messages (LEFT JOIN: Prune may
-- have deleted it). Deleting the topic forgets its keys.
CREATE TABLE herald.idempotency (
	app_id       text COLLATE "C" NOT NULL,
	key          text COLLATE "C" NOT NULL,
	topic_id     bigint NOT NULL REFERENCES herald.topics (id) ON DELETE CASCADE,
	message_id   bigint NOT NULL,
	published_at timestamptz NOT NULL,
	created_at   timestamptz NOT NULL,
	PRIMARY KEY (app_id, key)
);

CREATE INDEX idempotency_topic ON herald.idempotency (topic_id);
CREATE INDEX idempotency_created ON herald.idempotency (created_at);
