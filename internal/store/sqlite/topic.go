package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/heraldhq/herald/internal/store"
)

// lastIDExpr is the last id of topic t in SQL: the greater of t.last_id and
// the id of t's newest message, which SQLite finds with one seek to the end
// of t's range in the messages primary key. Publish leaves t.last_id as it
// is, so that its commits write no page of topics; Prune raises it before it
// deletes messages (raiseFloorQuery), so that ids never go back.
const lastIDExpr = `max(t.last_id, coalesce((SELECT max(m.id) FROM messages m WHERE m.topic_id = t.id), 0))`

// getTopicQuery reads topic (?1, ?2): its last id and creation time.
const getTopicQuery = `SELECT ` + lastIDExpr + `, t.created_at FROM topics t WHERE t.app_id = ?1 AND t.name = ?2`

// headQuery reads what a publish batch needs of topic (?1, ?2): its row
// id, its last id and the ids of its enabled triggers as a JSON array ("[]"
// when it has none). The triggers come with the topic, in the same
// statement, because this runs once per topic per batch on the writer's
// path: a topic without triggers costs one more index probe, not one more
// statement.
const headQuery = `
	SELECT t.id, ` + lastIDExpr + `,
		(SELECT json_group_array(tr.id) FROM triggers tr WHERE tr.topic_id = t.id AND tr.disabled = 0)
	FROM topics t WHERE t.app_id = ?1 AND t.name = ?2`

// CreateTopic creates a topic if it does not exist; created reports whether
// this call created it. An unknown app gives store.ErrNotFound.
func (s *Store) CreateTopic(ctx context.Context, appID, name string) (topic store.Topic, created bool, err error) {
	return s.CreateTopicWithin(ctx, appID, name, 0)
}

// CreateTopicWithin is CreateTopic for an app allowed at most max topics
// (max <= 0: any number); past it, store.ErrLimitReached. The count and
// the insert are one write transaction, and SQLite runs one at a time.
func (s *Store) CreateTopicWithin(ctx context.Context, appID, name string, max int) (topic store.Topic, created bool, err error) {
	if err := s.enter(); err != nil {
		return store.Topic{}, false, fmt.Errorf("create topic: %w", err)
	}
	defer s.mu.RUnlock()

	topic = store.Topic{AppID: appID, Name: name}
	err = s.writeTx(ctx, func(tx *sql.Tx) error {
		created = false
		if max > 0 {
			err := getTopicTx(ctx, tx, &topic)
			if !errors.Is(err, sql.ErrNoRows) {
				return err // it exists (or the read failed)
			}
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM topics WHERE app_id = ?`, appID).Scan(&n); err != nil {
				return err
			}
			if n >= max {
				return store.ErrLimitReached
			}
		}
		now := time.Now().UnixNano()
		res, err := tx.ExecContext(ctx, `INSERT INTO topics (app_id, name, last_id, created_at) VALUES (?, ?, 0, ?)
			ON CONFLICT (app_id, name) DO NOTHING`, appID, name, now)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 1 {
			created = true
			topic.CreatedAt = fromUnixNano(now)
			return nil
		}
		return getTopicTx(ctx, tx, &topic)
	})
	if err != nil {
		return store.Topic{}, false, fmt.Errorf("create topic %s: %w", name, interpretError(err))
	}
	return topic, created, nil
}

// getTopicTx reads topic's last id and creation time by its app and name,
// or returns sql.ErrNoRows.
func getTopicTx(ctx context.Context, tx *sql.Tx, topic *store.Topic) error {
	var createdAt int64
	err := tx.QueryRowContext(ctx, getTopicQuery, topic.AppID, topic.Name).Scan(&topic.LastID, &createdAt)
	topic.CreatedAt = fromUnixNano(createdAt)
	return err
}

// GetTopic returns one topic or store.ErrNotFound.
func (s *Store) GetTopic(ctx context.Context, appID, name string) (store.Topic, error) {
	if err := s.enter(); err != nil {
		return store.Topic{}, fmt.Errorf("get topic: %w", err)
	}
	defer s.mu.RUnlock()

	topic := store.Topic{AppID: appID, Name: name}
	var created int64
	if err := s.stmts.getTopic.QueryRowContext(ctx, appID, name).Scan(&topic.LastID, &created); err != nil {
		return store.Topic{}, fmt.Errorf("get topic %s: %w", name, interpretError(err))
	}
	topic.CreatedAt = fromUnixNano(created)
	return topic, nil
}

// ListTopics returns the app's topics ordered by name (bytewise). An unknown
// app gives store.ErrNotFound.
func (s *Store) ListTopics(ctx context.Context, appID string) (_ []store.Topic, err error) {
	if err := s.enter(); err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	defer s.mu.RUnlock()
	defer func() {
		if err != nil {
			err = fmt.Errorf("list topics: %w", interpretError(err))
		}
	}()

	// One statement, so one snapshot. The outer join gives an app without
	// topics one row of NULLs, and an unknown app no row at all.
	rows, err := s.rdb.QueryContext(ctx, `
		SELECT t.name, `+lastIDExpr+`, t.created_at
		FROM apps a LEFT JOIN topics t ON t.app_id = a.id
		WHERE a.id = ?
		ORDER BY t.name`, appID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	found := false
	topics := []store.Topic{}
	for rows.Next() {
		found = true
		var name sql.NullString
		var lastID, created sql.NullInt64
		if err := rows.Scan(&name, &lastID, &created); err != nil {
			return nil, err
		}
		if !name.Valid {
			continue // the app has no topics
		}
		topics = append(topics, store.Topic{
			AppID:     appID,
			Name:      name.String,
			LastID:    uint64(lastID.Int64),
			CreatedAt: fromUnixNano(created.Int64),
		})
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if !found {
		return nil, sql.ErrNoRows
	}
	return topics, nil
}

// DeleteTopic deletes a topic and its history, or returns
// store.ErrNotFound. It is one transaction, so a topic with a long history
// holds the write connection for as long as it takes to delete it.
func (s *Store) DeleteTopic(ctx context.Context, appID, name string) error {
	if err := s.enter(); err != nil {
		return fmt.Errorf("delete topic: %w", err)
	}
	defer s.mu.RUnlock()

	res, err := s.wdb.ExecContext(ctx, `DELETE FROM topics WHERE app_id = ? AND name = ?`, appID, name)
	if err == nil {
		err = requireOneRow(res)
	}
	if err != nil {
		return fmt.Errorf("delete topic %s: %w", name, interpretError(err))
	}
	return nil
}
