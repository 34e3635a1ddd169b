-- Node reports (see store.Nodes): each node's readiness and each app's
-- recent figures on it, replaced every few seconds.

CREATE TABLE herald.nodes (
	id     text COLLATE "C" PRIMARY KEY,
	addr   text NOT NULL,
	ready  boolean NOT NULL,
	reason text NOT NULL,
	at     timestamptz NOT NULL
);

CREATE TABLE herald.node_apps (
	node_id text COLLATE "C" NOT NULL REFERENCES herald.nodes (id) ON DELETE CASCADE,
	app_id  text COLLATE "C" NOT NULL,
	figures bytea NOT NULL,
	PRIMARY KEY (app_id, node_id)
);

CREATE INDEX node_apps_node ON herald.node_apps (node_id);
