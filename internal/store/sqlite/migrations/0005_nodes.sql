-- Node reports (see store.Nodes): each node's readiness and each app's
-- recent figures on it, replaced every few seconds. Times are INTEGER unix
-- nanoseconds, UTC.

CREATE TABLE nodes (
	id     TEXT PRIMARY KEY,
	addr   TEXT NOT NULL,
	ready  INTEGER NOT NULL CHECK (ready IN (0, 1)),
	reason TEXT NOT NULL,
	at     INTEGER NOT NULL
) STRICT;

CREATE TABLE node_apps (
	node_id TEXT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
	app_id  TEXT NOT NULL,
	figures BLOB NOT NULL,
	PRIMARY KEY (app_id, node_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX node_apps_node ON node_apps (node_id);
