-- The first schema. Times are INTEGER unix nanoseconds, UTC.

CREATE TABLE apps (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE keys (
	id          TEXT PRIMARY KEY,
	app_id      TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
	secret_hash BLOB NOT NULL,
	-- Scopes joined by commas, in the order given.
	scopes      TEXT NOT NULL,
	created_at  INTEGER NOT NULL
) STRICT;

CREATE INDEX keys_app_id ON keys (app_id);

CREATE TABLE topics (
	id         INTEGER PRIMARY KEY,
	app_id     TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
	name       TEXT NOT NULL,
	-- A floor under the topic's last id, which is the greater of this and
	-- the newest message's id (see lastIDExpr in the Go code). Publish does
	-- not update it, so that a commit writes no page of this table; Prune
	-- raises it before deleting messages.
	last_id    INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL,
	UNIQUE (app_id, name)
) STRICT;

-- Clustered by (topic_id, id): a topic's history is one contiguous range,
-- appends go to its end and replay reads it in order.
CREATE TABLE messages (
	topic_id     INTEGER NOT NULL REFERENCES topics (id) ON DELETE CASCADE,
	id           INTEGER NOT NULL,
	body         BLOB NOT NULL,
	published_at INTEGER NOT NULL,
	PRIMARY KEY (topic_id, id)
) STRICT, WITHOUT ROWID;
