package postgres

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/heraldhq/herald/internal/store"
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
// first. An unknown topic gives store.ErrNotFound; a limit of 0 or less
// gives no messages. A reader never sees id n+1 without id n (unless Prune
// deleted n): a publish batch's transaction holds its topics' rows until
// it has committed, so commits of one topic follow id order.
func (s *Store) History(ctx context.Context, appID, topic string, after uint64, limit int) (_ []store.Message, err error) {
	if err := s.enter(); err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	defer s.mu.RUnlock()
	defer func() {
		if err != nil {
			err = fmt.Errorf("history of %s: %w", topic, interpretError(err))
		}
	}()

	if limit <= 0 {
		if _, err := s.getTopic(ctx, appID, topic); err != nil {
			return nil, err
		}
		return []store.Message{}, nil
	}
	if !storable(appID) || !storable(topic) {
		return nil, store.ErrNotFound
	}
	// Ids are at most math.MaxInt64, Postgres's largest bigint.
	after = min(after, math.MaxInt64)

	rows, err := s.pool.Query(ctx, historyQuery, appID, topic, int64(after), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	found := false
	msgs := make([]store.Message, 0, min(limit, 64))
	for rows.Next() {
		found = true
		var id *int64
		var body []byte
		var published *time.Time
		if err := rows.Scan(&id, &body, &published); err != nil {
			return nil, err
		}
		if id == nil {
			continue // the topic has no messages after after
		}
		msgs = append(msgs, store.Message{
			AppID:       appID,
			Topic:       topic,
			ID:          uint64(*id),
			Body:        body,
			PublishedAt: published.UTC(),
		})
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if !found {
		return nil, store.ErrNotFound
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
// many. A message goes when it is older than r.MaxAge and not among the
// newest r.Keep of its topic (negative values count as 0). Prune deletes in
// statements of at most Options.PruneChunk messages, each its own
// transaction, so publishes go on meanwhile; when it fails, what it deleted
// until then stays deleted. It never changes a topic's last id.
//
// First it forgets the idempotency keys older than
// store.IdempotencyWindow at now.
//
// Stamps come from the database's clock and now from the caller's, so a
// skew between them shifts the age boundary by as much.
func (s *Store) Prune(ctx context.Context, r store.Retention, now time.Time) (total int64, err error) {
	if err := s.enter(); err != nil {
		return 0, fmt.Errorf("prune: %w", err)
	}
	defer s.mu.RUnlock()
	defer func() {
		if err != nil {
			err = fmt.Errorf("prune: %w", interpretError(err))
		}
	}()
	if err := ctx.Err(); err != nil {
		return 0, err
	}

	if _, err := s.pruneChunks(ctx, `
		DELETE FROM herald.idempotency WHERE (app_id, key) IN (
			SELECT app_id, key FROM herald.idempotency WHERE created_at <= $1 LIMIT $2)`,
		// A key whose window has ended: stamped at now-window or before,
		// the lookup's bound (getKeysQuery). Stamps are whole microseconds.
		now.Add(-store.IdempotencyWindow).Truncate(time.Microsecond)); err != nil {
		return 0, err
	}
	keep := int64(max(r.Keep, 0))
	cutoff := pruneCutoff(now, max(r.MaxAge, 0))
	var topics []int64
	for after := int64(0); ; after = topics[len(topics)-1] {
		if topics, err = s.pruneTopics(ctx, after, keep, cutoff); err != nil {
			return total, err
		}
		if len(topics) == 0 {
			return total, nil
		}
		for _, topicID := range topics {
			n, err := s.pruneTopic(ctx, topicID, keep, cutoff)
			total += n
			if err != nil {
				return total, err
			}
		}
	}
}

// pruneTopic prunes one topic, a chunk per statement, and returns how many
// messages it deleted.
func (s *Store) pruneTopic(ctx context.Context, topicID, keep int64, cutoff time.Time) (total int64, err error) {
	chunk := int64(s.opts.PruneChunk)
	for {
		select {
		case <-s.closing:
			return total, store.ErrClosed
		default:
		}
		tag, err := s.pool.Exec(ctx, pruneQuery, topicID, keep, cutoff, chunk)
		if err != nil {
			return total, err
		}
		n := tag.RowsAffected()
		total += n
		if n < chunk {
			return total, nil
		}
	}
}

// pruneTopics returns the next topics, after the row id after, that Prune
// has work in.
func (s *Store) pruneTopics(ctx context.Context, after, keep int64, cutoff time.Time) ([]int64, error) {
	rows, err := s.pool.Query(ctx, pruneTopicsQuery, after, keep, cutoff, 1000)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// pruneCutoff returns the publish time before which a message is older than
// maxAge at now, rounded up to the microsecond. Stamps are whole
// microseconds, so for a stamp p, p < the rounded cutoff exactly when p is
// before the exact one; pgx would otherwise drop the nanoseconds, and a
// message a nanosecond past the age would stay.
func pruneCutoff(now time.Time, maxAge time.Duration) time.Time {
	cut := now.Add(-maxAge)
	if down := cut.Truncate(time.Microsecond); !down.Equal(cut) {
		return down.Add(time.Microsecond)
	}
	return cut
}
