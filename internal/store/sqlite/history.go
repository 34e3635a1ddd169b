package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/sqlstore"
)

// historyQuery reads up to ?4 messages of topic (?1, ?2) with id > ?3, in
// one statement and so one snapshot: the outer join gives a topic without
// such messages one row of NULLs, and an unknown topic no row at all.
const historyQuery = `
	SELECT m.id, m.body, m.published_at
	FROM topics t LEFT JOIN messages m ON m.topic_id = t.id AND m.id > ?3
	WHERE t.app_id = ?1 AND t.name = ?2
	ORDER BY m.id
	LIMIT ?4`

// History returns up to limit messages of a topic with id > after, oldest
// first (see sqlstore.History). An unknown topic gives store.ErrNotFound; a
// limit of 0 or less gives no messages.
func (s *Store) History(ctx context.Context, appID, topic string, after uint64, limit int) ([]store.Message, error) {
	if err := s.enter(); err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	defer s.mu.RUnlock()
	msgs, err := sqlstore.History(ctx, (*seam)(s), appID, topic, after, limit)
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", topic, err)
	}
	return msgs, nil
}

// pruneTopicsQuery lists, after topic row id ?1, up to ?4 topics whose
// oldest message is both older than the cutoff ?3 and not among the newest
// ?2: the topics Prune has work in. Two index probes per topic, on the read
// pool.
const pruneTopicsQuery = `
	SELECT t.id FROM topics t
	WHERE t.id > ?1
	  AND (SELECT m.id FROM messages m WHERE m.topic_id = t.id ORDER BY m.id LIMIT 1) <= ` + lastIDExpr + ` - ?2
	  AND (SELECT m.published_at FROM messages m WHERE m.topic_id = t.id ORDER BY m.id LIMIT 1) < ?3
	ORDER BY t.id
	LIMIT ?4`

// raiseFloorQuery sets the last_id of topic row id ?1 to its newest
// message's id when that is greater, so that the topic's last id stays put
// whatever Prune deletes.
const raiseFloorQuery = `
	UPDATE topics SET last_id = (SELECT max(id) FROM messages WHERE topic_id = ?1)
	WHERE id = ?1 AND last_id < (SELECT max(id) FROM messages WHERE topic_id = ?1)`

// pruneQuery deletes, of topic row id ?1, the messages older than the
// cutoff ?3 among its ?4 oldest that are not among its newest ?2; it must
// follow raiseFloorQuery in the same transaction. It looks at ?4 rows at
// most, whatever the size of the history, so one chunk never holds the write
// connection for long. Fewer deletions than ?4 mean the topic is done: what
// follows is young, since published_at grows with ids.
const pruneQuery = `
	DELETE FROM messages
	WHERE topic_id = ?1
	  AND id IN (
		SELECT id FROM messages
		WHERE topic_id = ?1 AND id <= (SELECT last_id FROM topics WHERE id = ?1) - ?2
		ORDER BY id
		LIMIT ?4)
	  AND published_at < ?3`

// Prune deletes messages outside the retention r at now and returns how
// many (see sqlstore.Pruner.Messages), in transactions of at most
// Options.PruneChunk messages, so publishes go on meanwhile; when it fails,
// what it deleted until then stays deleted. First it forgets the
// idempotency keys older than store.IdempotencyWindow at now.
func (s *Store) Prune(ctx context.Context, r store.Retention, now time.Time) (int64, error) {
	if err := s.enter(); err != nil {
		return 0, fmt.Errorf("prune: %w", err)
	}
	defer s.mu.RUnlock()
	n, err := s.pruner.Messages(ctx, r, now)
	if err != nil {
		return n, fmt.Errorf("prune: %w", err)
	}
	return n, nil
}
