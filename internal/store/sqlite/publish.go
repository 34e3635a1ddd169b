package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/groupcommit"
)

// Publish stores one message and returns it once committed. The request
// goes to the writer, which commits it together with the other publishes
// waiting at that moment (see the package doc). A request whose ctx ends
// before the writer takes it is not written and gets ctx.Err(); once taken,
// it is written and Publish waits for the commit.
func (s *Store) Publish(ctx context.Context, req store.PublishRequest) (store.Message, error) {
	if err := ctx.Err(); err != nil {
		return store.Message{}, fmt.Errorf("publish: %w", err)
	}
	return s.queue.Submit(ctx, req)
}

// topicKey names a topic.
type topicKey struct{ app, topic string }

// topicGroup is what one batch publishes to one topic.
type topicGroup struct {
	key topicKey
	// topicID is the topic's row id; err is set instead when the topic
	// does not exist.
	topicID int64
	err     error
	// next is the id the next call of the group gets.
	next uint64
}

// writer is the state of the writer goroutine, reused from batch to batch
// so that a batch allocates little.
type writer struct {
	s      *Store
	groups []topicGroup
	index  map[topicKey]int
	// stamp is the published_at of the last batch committed, in unix
	// nanoseconds. No batch gets an earlier one, so published_at never
	// decreases along a topic's ids even if the wall clock steps back.
	stamp int64
	// commits counts the batches committed.
	commits uint64
}

// write is the writer goroutine: it commits batches of publishes until
// Close. It is the only user of the write connection for publishes.
func (s *Store) write() {
	w := &writer{s: s, index: make(map[topicKey]int)}
	s.queue.Run(w.commit)
}

// commit writes live in one transaction and answers every call in it.
func (w *writer) commit(live []*groupcommit.Call) {
	clear(w.index)
	w.groups = w.groups[:0]
	for _, c := range live {
		k := topicKey{c.Req.AppID, c.Req.Topic}
		g, ok := w.index[k]
		if !ok {
			g = len(w.groups)
			w.groups = append(w.groups, topicGroup{key: k})
			w.index[k] = g
		}
		c.Group = g
	}

	stamp := max(time.Now().UnixNano(), w.stamp)
	if err := w.writeTx(live, stamp); err != nil {
		err = fmt.Errorf("publish: %w", interpretError(err))
		for _, c := range live {
			c.Err = err
			c.Answer()
		}
		return
	}
	w.stamp = stamp
	if w.commits++; w.commits%checkpointEvery == 0 {
		w.s.wakeCheckpointer()
	}

	publishedAt := fromUnixNano(stamp)
	for _, c := range live {
		if err := w.groups[c.Group].err; err != nil {
			c.Err = err
		} else {
			c.Msg = store.Message{
				AppID:       c.Req.AppID,
				Topic:       c.Req.Topic,
				ID:          c.ID,
				Body:        c.Req.Body,
				PublishedAt: publishedAt,
			}
			if f := c.Req.CommittedFunc; f != nil {
				f(c.Msg)
			}
		}
		c.Answer()
	}
}

// writeTx runs the batch's transaction: it reads the last id of each topic,
// then inserts the messages in batch order with the ids that follow. A topic
// that does not exist sets its group's err and fails only that group. The
// topics table is only read: a commit writes the pages of messages alone.
func (w *writer) writeTx(live []*groupcommit.Call, stamp int64) error {
	s := w.s
	// Not a caller's context: once taken, the batch is written whatever
	// happens to the callers, and a context that cannot end spares the
	// driver a goroutine per statement.
	ctx := context.Background()
	return s.writeTx(ctx, func(tx *sql.Tx) error {
		head := tx.StmtContext(ctx, s.stmts.head)
		insert := tx.StmtContext(ctx, s.stmts.insert)

		for i := range w.groups {
			g := &w.groups[i]
			var lastID int64
			err := head.QueryRowContext(ctx, g.key.app, g.key.topic).Scan(&g.topicID, &lastID)
			if errors.Is(err, sql.ErrNoRows) {
				g.err = fmt.Errorf("publish: topic %s: %w", g.key.topic, store.ErrNotFound)
				continue
			}
			if err != nil {
				return err
			}
			g.next = uint64(lastID) + 1
		}

		for _, c := range live {
			g := &w.groups[c.Group]
			if g.err != nil {
				continue
			}
			body := []byte(c.Req.Body)
			if body == nil {
				// NULL would break NOT NULL; the store does not judge bodies.
				body = []byte{}
			}
			c.ID = g.next
			g.next++
			if _, err := insert.ExecContext(ctx, g.topicID, int64(c.ID), body, stamp); err != nil {
				return err
			}
		}
		return nil
	})
}
