package sqlstore

import (
	"context"
	"math"
	"time"

	"github.com/heraldhq/herald/internal/store"
)

// HistoryDB is what a store gives History: its history query and its topic
// lookup. Errors come back already translated into the store's terms.
type HistoryDB interface {
	// TopicExists returns nil when the topic exists, and an error wrapping
	// store.ErrNotFound when it does not.
	TopicExists(ctx context.Context, appID, topic string) error
	// HistoryRows reads up to limit (> 0) messages of the topic with id >
	// after, in id order, in one statement and so one snapshot: a topic
	// without such messages gives one row whose message is absent (its id
	// NULL, from an outer join), an unknown topic no row at all.
	HistoryRows(ctx context.Context, appID, topic string, after int64, limit int) (HistoryRows, error)
}

// HistoryRows is the rows of HistoryDB.HistoryRows. History closes them.
type HistoryRows interface {
	// Next advances to the next row, or reports false at the end or on an
	// error (see Err).
	Next() bool
	// Message scans the current row: ok is false for the row of a topic
	// without messages.
	Message() (id int64, body []byte, publishedAt time.Time, ok bool, err error)
	// Err returns the error that ended Next, if any.
	Err() error
	// Close releases the rows.
	Close()
}

// History returns up to limit messages of a topic with id > after, oldest
// first, the page a reader asks for after its cursor. An unknown topic
// gives store.ErrNotFound; a limit of 0 or less gives no messages (but
// still the not found). A cursor past the largest id either store holds
// (math.MaxInt64) reads as that id.
func History(ctx context.Context, db HistoryDB, appID, topic string, after uint64, limit int) ([]store.Message, error) {
	if limit <= 0 {
		if err := db.TopicExists(ctx, appID, topic); err != nil {
			return nil, err
		}
		return []store.Message{}, nil
	}
	rows, err := db.HistoryRows(ctx, appID, topic, int64(min(after, math.MaxInt64)), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	found := false
	// Most pages are short (a reader that catches up): the limit is a
	// bound, not a size hint.
	msgs := make([]store.Message, 0, min(limit, 64))
	for rows.Next() {
		found = true
		id, body, at, ok, err := rows.Message()
		if err != nil {
			return nil, err
		}
		if !ok {
			continue // the topic has no messages after after
		}
		msgs = append(msgs, store.Message{AppID: appID, Topic: topic, ID: uint64(id), Body: body, PublishedAt: at})
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if !found {
		return nil, store.ErrNotFound
	}
	return msgs, nil
}
