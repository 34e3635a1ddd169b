-- Per-app limits that override the server's defaults (store.AppLimits),
-- kept as JSON: a new kind of limit needs no migration.
CREATE TABLE app_limits (
    app_id TEXT PRIMARY KEY REFERENCES apps (id) ON DELETE CASCADE,
    limits TEXT NOT NULL
) STRICT;
