-- The table plain.sql and notify.sql insert into: one row per publish, about
-- the size of a Herald message row (a 128-byte JSON body). See run.sh.
SET client_min_messages = warning;
DROP TABLE IF EXISTS bench_messages;
CREATE TABLE bench_messages (
    id           bigserial PRIMARY KEY,
    topic        text NOT NULL,
    body         text NOT NULL,
    published_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
