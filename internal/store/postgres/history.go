package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/sqlstore"
)

// historyQuery reads up to $4 messages of topic ($1, $2) with id > $3, in
// one statement and so one snapshot: the outer join gives a topic without
// such messages one row of NULLs, and an unknown topic no row at all. The
// limit sits inside the lateral subquery, where it stops the scan of the
// primary key after $4 rows; on a plain join Postgres would read the rest
// of the topic's history and sort it.
const historyQuery = `
	SELECT m.id, m.body, m.published_at
	FROM herald.topics t
	LEFT JOIN LATERAL (
		SELECT id, body, published_at FROM herald.messages
		WHERE topic_id = t.id AND id > $3
		ORDER BY id
		LIMIT $4) m ON true
	WHERE t.app_id = $1 AND t.name = $2
	ORDER BY m.id`

// History returns up to limit messages of a topic with id > after, oldest
// first (see sqlstore.History). An unknown topic gives store.ErrNotFound; a
// limit of 0 or less gives no messages. A reader never sees id n+1 without
// id n (unless Prune deleted n): a publish batch's transaction holds its
// topics' rows until it has committed, so commits of one topic follow id
// order.
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

// pruneTopicsQuery lists, after topic row id $1, up to $4 topics whose
// oldest message is both older than the cutoff $3 and not among the newest
// $2: the topics Prune has work in. One index probe per topic.
const pruneTopicsQuery = `
	SELECT t.id FROM herald.topics t
	CROSS JOIN LATERAL (
		SELECT m.id, m.published_at FROM herald.messages m
		WHERE m.topic_id = t.id ORDER BY m.id LIMIT 1) oldest
	WHERE t.id > $1 AND oldest.id <= t.last_id - $2 AND oldest.published_at < $3
	ORDER BY t.id
	LIMIT $4`

// pruneQuery deletes, of topic row id $1, the messages older than the
// cutoff $3 among its $4 oldest that are not among its newest $2. It looks
// at $4 rows at most, whatever the size of the history, so one chunk is a
// short transaction. Fewer deletions than $4 mean the topic is done: what
// follows is young, since published_at never decreases along ids. It reads
// last_id without locking the topic, so it never waits for publishes; an
// older last_id only keeps more, and last_id never goes down.
const pruneQuery = `
	DELETE FROM herald.messages
	WHERE topic_id = $1
	  AND id IN (
		SELECT id FROM herald.messages
		WHERE topic_id = $1 AND id <= (SELECT last_id FROM herald.topics WHERE id = $1) - $2
		ORDER BY id
		LIMIT $4)
	  AND published_at < $3`

// Prune deletes messages outside the retention r at now and returns how
// many (see sqlstore.Pruner.Messages). It deletes in statements of at most
// Options.PruneChunk messages, each its own transaction, so publishes go on
// meanwhile; when it fails, what it deleted until then stays deleted. It
// never changes a topic's last id. First it forgets the idempotency keys
// older than store.IdempotencyWindow at now.
//
// Stamps come from the database's clock and now from the caller's, so a
// skew between them shifts the age boundary by as much.
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
