-- A message's topic no longer has a foreign key. Its check was one query per
-- inserted row, about half of what Postgres spent inserting a batch, and it
-- guarded nothing the publish transaction does not already hold: the batch
-- inserts only into topic rows it has locked with its UPDATE of last_id, so
-- the topic exists until the batch commits. DeleteTopic and DeleteApp now
-- delete the history themselves, after the topic rows (see topic.go).
ALTER TABLE herald.messages DROP CONSTRAINT messages_topic_id_fkey;
