-- One publish without a notification: one row, one transaction. See run.sh.
BEGIN;
INSERT INTO bench_messages (topic, body) VALUES ('orders', '{"order":42,"customer":"c-1234567","total":12.5,"currency":"EUR","items":[{"sku":"A-1","qty":2}],"note":"xxxxxxxxxxxxxxxxxxxxx"}');
END;
