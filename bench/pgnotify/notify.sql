-- One publish with a notification: plain.sql plus a NOTIFY in the same
-- transaction, as a Herald cluster node sends one with every publishing
-- commit. The payload is sent at COMMIT, under a database-wide lock. See
-- run.sh.
BEGIN;
INSERT INTO bench_messages (topic, body) VALUES ('orders', '{"order":42,"customer":"c-1234567","total":12.5,"currency":"EUR","items":[{"sku":"A-1","qty":2}],"note":"xxxxxxxxxxxxxxxxxxxxx"}');
SELECT pg_notify('bench', 'x');
END;
