package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"time"

	"github.com/heraldhq/herald/internal/store"
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
// first. An unknown topic gives store.ErrNotFound; a limit of 0 or less
// gives no messages.
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
		var lastID, created int64
		if err := s.stmts.getTopic.QueryRowContext(ctx, appID, topic).Scan(&lastID, &created); err != nil {
			return nil, err
		}
		return []store.Message{}, nil
	}
	// Ids are at most math.MaxInt64, SQLite's largest integer.
	after = min(after, math.MaxInt64)

	rows, err := s.stmts.history.QueryContext(ctx, appID, topic, int64(after), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	found := false
	msgs := make([]store.Message, 0, min(limit, 64))
	for rows.Next() {
		found = true
		var id, published sql.NullInt64
		var body []byte
		if err := rows.Scan(&id, &body, &published); err != nil {
			return nil, err
		}
		if !id.Valid {
			continue // the topic has no messages after after
		}
		msgs = append(msgs, store.Message{
			AppID:       appID,
			Topic:       topic,
			ID:          uint64(id.Int64),
			Body:        body,
			PublishedAt: fromUnixNano(published.Int64),
		})
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if !found {
		return nil, sql.ErrNoRows
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
// many. A message goes when it is older than r.MaxAge and not among the
// newest r.Keep of its topic (negative values count as 0). Prune deletes
// in transactions of at most Options.PruneChunk messages, so publishes go
// on meanwhile; when it fails, what it deleted until then stays deleted.
// First it forgets the idempotency keys older than store.IdempotencyWindow
// at now.
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

	// Keys at or before the cutoff, which publishes already treat as
	// unknown.
	if _, err := s.pruneChunks(ctx, `
		DELETE FROM idempotency WHERE (app_id, key) IN (
			SELECT app_id, key FROM idempotency WHERE created_at <= ?1 LIMIT ?2)`,
		pruneCutoff(now, store.IdempotencyWindow)); err != nil {
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

// pruneTopic prunes one topic, a chunk per transaction, and returns how
// many messages it deleted.
func (s *Store) pruneTopic(ctx context.Context, topicID, keep, cutoff int64) (total int64, err error) {
	chunk := int64(s.opts.PruneChunk)
	for {
		select {
		case <-s.closing:
			return total, store.ErrClosed
		default:
		}
		var n int64
		err := s.writeTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.StmtContext(ctx, s.stmts.raiseFloor).ExecContext(ctx, topicID); err != nil {
				return err
			}
			res, err := tx.StmtContext(ctx, s.stmts.prune).ExecContext(ctx, topicID, keep, cutoff, chunk)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return total, err
		}
		total += n
		if n < chunk {
			return total, nil
		}
	}
}

// pruneTopics returns the next topics, after the row id after, that Prune
// has work in.
func (s *Store) pruneTopics(ctx context.Context, after, keep, cutoff int64) ([]int64, error) {
	rows, err := s.rdb.QueryContext(ctx, pruneTopicsQuery, after, keep, cutoff, 1000)
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

// pruneCutoff returns, in unix nanoseconds, the publish time before which a
// message is older than maxAge at now, within the range a stored time has.
func pruneCutoff(now time.Time, maxAge time.Duration) int64 {
	cut := now.Add(-maxAge)
	switch {
	case cut.Before(time.Unix(0, 0)):
		return 0
	case cut.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	}
	return cut.UnixNano()
}
