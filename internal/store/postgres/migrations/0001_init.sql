-- The first schema. Every table lives in the schema herald, so that Herald
-- can share a database with other software. Times are timestamptz
-- (microseconds). Names and ids are COLLATE "C": they compare and sort
-- bytewise, as in the SQLite store and in Go, whatever the database's
-- default collation.

CREATE TABLE herald.apps (
	id         text COLLATE "C" PRIMARY KEY,
	name       text NOT NULL,
	created_at timestamptz NOT NULL,
	-- The order of creation, which breaks ties between equal created_at
	-- in ListApps.
	seq        bigint GENERATED ALWAYS AS IDENTITY
);

CREATE INDEX apps_created_at ON herald.apps (created_at, seq);

CREATE TABLE herald.keys (
	id          text COLLATE "C" PRIMARY KEY,
	app_id      text COLLATE "C" NOT NULL REFERENCES herald.apps (id) ON DELETE CASCADE,
	secret_hash bytea NOT NULL,
	-- In the order given.
	scopes      text[] NOT NULL,
	created_at  timestamptz NOT NULL
);

CREATE INDEX keys_app_id ON herald.keys (app_id);

-- Every publish updates its topic's row (last_id is the id counter), so the
-- table leaves room in each page: the new row version then fits on the same
-- page and the update is HOT (no index is touched).
CREATE TABLE herald.topics (
	id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	app_id       text COLLATE "C" NOT NULL REFERENCES herald.apps (id) ON DELETE CASCADE,
	name         text COLLATE "C" NOT NULL,
	-- The id of the newest message ever published to the topic. Publish
	-- raises it under the row lock, in the publishing transaction: it is the
	-- truth about ids, and nothing lowers it (Prune deletes messages only).
	last_id      bigint NOT NULL DEFAULT 0,
	-- The published_at of the newest message, NULL before the first. A
	-- publish stamps its messages with greatest(this, the clock), so that
	-- published_at never goes back along a topic's ids, whichever node
	-- published and whatever its clock.
	published_at timestamptz,
	created_at   timestamptz NOT NULL,
	UNIQUE (app_id, name)
) WITH (fillfactor = 50);

-- Clustered in practice by (topic_id, id): a topic's history is one range of
-- the primary key, appends go to its end and replay reads it in order. The
-- body is bytea, not jsonb: the store keeps the bytes it was given, and
-- jsonb would both reformat them and reject \u0000.
CREATE TABLE herald.messages (
	topic_id     bigint NOT NULL REFERENCES herald.topics (id) ON DELETE CASCADE,
	id           bigint NOT NULL,
	body         bytea NOT NULL,
	published_at timestamptz NOT NULL,
	PRIMARY KEY (topic_id, id)
);
