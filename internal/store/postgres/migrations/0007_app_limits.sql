-- Per-app limits that override the server's defaults (store.AppLimits),
-- kept as JSON: a new kind of limit needs no migration.
CREATE TABLE herald.app_limits (
    app_id text COLLATE "C" PRIMARY KEY REFERENCES herald.apps (id) ON DELETE CASCADE,
    limits jsonb NOT NULL
);
