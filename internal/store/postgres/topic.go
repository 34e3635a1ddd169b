package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/internal/store"
)

// CreateTopic creates a topic if it does not exist; created reports whether
// this call created it. An unknown app gives store.ErrNotFound.
func (s *Store) CreateTopic(ctx context.Context, appID, name string) (topic store.Topic, created bool, err error) {
	return s.CreateTopicWithin(ctx, appID, name, 0)
}

// CreateTopicWithin is CreateTopic for an app allowed at most max topics
// (max <= 0: any number); past it, store.ErrLimitReached.
func (s *Store) CreateTopicWithin(ctx context.Context, appID, name string, max int) (topic store.Topic, created bool, err error) {
	if err := s.enter(); err != nil {
		return store.Topic{}, false, fmt.Errorf("create topic: %w", err)
	}
	defer s.mu.RUnlock()
	defer func() {
		if err != nil {
			err = fmt.Errorf("create topic %s: %w", name, interpretError(err))
		}
	}()
	if !storable(appID) {
		return store.Topic{}, false, store.ErrNotFound
	}
	if !storable(name) {
		return store.Topic{}, false, errors.New("name is not valid UTF-8 or holds NUL")
	}
	if max <= 0 {
		return s.createTopic(ctx, appID, name)
	}
	err = s.writeTx(ctx, func(tx pgx.Tx) error {
		var err error
		topic, created, err = createTopicLocked(ctx, tx, appID, name, max)
		return err
	})
	return topic, created, err
}

// createTopic creates a topic without a limit, in one statement: no lock.
func (s *Store) createTopic(ctx context.Context, appID, name string) (topic store.Topic, created bool, err error) {
	topic = store.Topic{AppID: appID, Name: name}
	// Each statement sees what committed before it began. When the insert
	// finds the topic there, the select that follows sees it too, unless a
	// DeleteTopic committed in between: then the insert can win next time.
	for attempt := 1; ; attempt++ {
		err = s.pool.QueryRow(ctx, insertTopicQuery, appID, name).Scan(&topic.CreatedAt)
		if err == nil {
			topic.CreatedAt = topic.CreatedAt.UTC()
			return topic, true, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return store.Topic{}, false, err
		}
		topic, err = s.getTopic(ctx, appID, name)
		if err == nil || !errors.Is(err, pgx.ErrNoRows) || attempt == maxTxAttempts {
			return topic, false, err
		}
	}
}

// insertTopicQuery creates topic ($1, $2) and returns its creation time,
// or no row if it exists.
const insertTopicQuery = `INSERT INTO herald.topics (app_id, name, created_at) VALUES ($1, $2, now())
	ON CONFLICT (app_id, name) DO NOTHING
	RETURNING created_at`

// createTopicLocked creates a topic in tx unless its app has max topics
// already (store.ErrLimitReached), under the app's create lock.
func createTopicLocked(ctx context.Context, tx pgx.Tx, appID, name string, max int) (store.Topic, bool, error) {
	if err := lockAppCreates(ctx, tx, appID); err != nil {
		return store.Topic{}, false, err
	}
	topic, err := readTopic(ctx, tx, appID, name)
	if !errors.Is(err, pgx.ErrNoRows) {
		return topic, false, err // it exists (or the read failed)
	}
	var n int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM herald.topics WHERE app_id = $1`, appID).Scan(&n); err != nil {
		return store.Topic{}, false, err
	}
	if n >= max {
		return store.Topic{}, false, store.ErrLimitReached
	}
	// A create without a limit does not take the lock: it may have
	// inserted the name since.
	topic = store.Topic{AppID: appID, Name: name}
	err = tx.QueryRow(ctx, insertTopicQuery, appID, name).Scan(&topic.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		topic, err = readTopic(ctx, tx, appID, name)
		return topic, false, err
	}
	topic.CreatedAt = topic.CreatedAt.UTC()
	return topic, err == nil, err
}

// lockAppCreates takes, until tx ends, the lock that serializes the
// creates of appID's topics and triggers that count them against a limit:
// the app's row, FOR NO KEY UPDATE, which the foreign keys of rows being
// inserted for the app (FOR KEY SHARE) do not wait for, so publishes and
// unlimited creates never wait on it. Each statement after it sees what
// the creates it waited for committed (read committed takes a snapshot per
// statement). An unknown app gives pgx.ErrNoRows.
func lockAppCreates(ctx context.Context, tx pgx.Tx, appID string) error {
	var one int
	return tx.QueryRow(ctx, `SELECT 1 FROM herald.apps WHERE id = $1 FOR NO KEY UPDATE`, appID).Scan(&one)
}

// rowQuerier is what readTopic reads through: the pool or a transaction.
type rowQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// GetTopic returns one topic or store.ErrNotFound.
func (s *Store) GetTopic(ctx context.Context, appID, name string) (store.Topic, error) {
	if err := s.enter(); err != nil {
		return store.Topic{}, fmt.Errorf("get topic: %w", err)
	}
	defer s.mu.RUnlock()

	topic, err := s.getTopic(ctx, appID, name)
	if err != nil {
		return store.Topic{}, fmt.Errorf("get topic %s: %w", name, interpretError(err))
	}
	return topic, nil
}

// getTopic reads a topic; a topic that does not exist gives pgx.ErrNoRows.
func (s *Store) getTopic(ctx context.Context, appID, name string) (store.Topic, error) {
	return readTopic(ctx, s.pool, appID, name)
}

// readTopic reads a topic through q, the pool or a transaction; a topic
// that does not exist gives pgx.ErrNoRows.
func readTopic(ctx context.Context, q rowQuerier, appID, name string) (store.Topic, error) {
	if !storable(appID) || !storable(name) {
		return store.Topic{}, pgx.ErrNoRows
	}
	topic := store.Topic{AppID: appID, Name: name}
	var lastID int64
	err := q.QueryRow(ctx, `SELECT last_id, created_at FROM herald.topics WHERE app_id = $1 AND name = $2`, appID, name).
		Scan(&lastID, &topic.CreatedAt)
	if err != nil {
		return store.Topic{}, err
	}
	topic.LastID = uint64(lastID)
	topic.CreatedAt = topic.CreatedAt.UTC()
	return topic, nil
}

// ListTopics returns the app's topics ordered by name (bytewise: the
// column's collation is "C"). An unknown app gives store.ErrNotFound.
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
	if !storable(appID) {
		return nil, store.ErrNotFound
	}

	// One statement, so one snapshot. The outer join gives an app without
	// topics one row of NULLs, and an unknown app no row at all.
	rows, err := s.pool.Query(ctx, `
		SELECT t.name, t.last_id, t.created_at
		FROM herald.apps a LEFT JOIN herald.topics t ON t.app_id = a.id
		WHERE a.id = $1
		ORDER BY t.name`, appID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	found := false
	topics := []store.Topic{}
	for rows.Next() {
		found = true
		var name *string
		var lastID *int64
		var created *time.Time
		if err := rows.Scan(&name, &lastID, &created); err != nil {
			return nil, err
		}
		if name == nil {
			continue // the app has no topics
		}
		topics = append(topics, store.Topic{
			AppID:     appID,
			Name:      *name,
			LastID:    uint64(*lastID),
			CreatedAt: created.UTC(),
		})
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if !found {
		return nil, store.ErrNotFound
	}
	return topics, nil
}

// DeleteTopic deletes a topic and its history, or returns
// store.ErrNotFound. It waits for a publish batch that holds the topic's
// row, and a batch that comes after finds the topic gone.
//
// The history goes in a statement after the topic's, which starts once
// the topic's row is ours: it sees every message a batch committed before
// us, and no batch can insert one after (see deleteHistory).
func (s *Store) DeleteTopic(ctx context.Context, appID, name string) error {
	if err := s.enter(); err != nil {
		return fmt.Errorf("delete topic: %w", err)
	}
	defer s.mu.RUnlock()

	err := store.ErrNotFound
	if storable(appID) && storable(name) {
		err = s.writeTx(ctx, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `DELETE FROM herald.topics WHERE app_id = $1 AND name = $2 RETURNING id`, appID, name)
			if err != nil {
				return err
			}
			ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
			if err == nil && len(ids) == 0 {
				err = store.ErrNotFound
			}
			if err != nil {
				return err
			}
			return deleteHistory(ctx, tx, ids)
		})
	}
	if err != nil {
		return fmt.Errorf("delete topic %s: %w", name, interpretError(err))
	}
	return nil
}

// deleteHistory deletes the messages of the deleted topics topicIDs, in
// tx. Messages have no foreign key to their topic (its check cost a query
// per published message; see migrations/0008_messages_no_fk.sql), so what
// ON DELETE CASCADE did is done here. tx must have deleted the topic rows
// in an earlier statement: that one waited for every batch holding them,
// so this one, read committed, sees all their messages, and a later batch
// finds the topics gone and inserts none.
func deleteHistory(ctx context.Context, tx pgx.Tx, topicIDs []int64) error {
	if len(topicIDs) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `DELETE FROM herald.messages WHERE topic_id = ANY($1::bigint[])`, topicIDs)
	return err
}
