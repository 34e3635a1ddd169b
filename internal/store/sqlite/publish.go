package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
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

// PublishBatch stores reqs in one transaction, all or nothing (see
// store.Store). The writer commits them, next to each other, in a batch
// with other publishes; a savepoint keeps a failed batch publish from
// taking the others with it.
func (s *Store) PublishBatch(ctx context.Context, reqs []store.PublishRequest) ([]store.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	return s.queue.SubmitBatch(ctx, reqs)
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
	// triggers are the ids of the topic's enabled triggers: each message
	// of the group gets a delivery for each.
	triggers []string
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
	// saved is where each group's next id stood when the batch publish
	// being written began (see beginUnit).
	saved []uint64
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
		switch {
		case c.Err != nil || c.Replay:
			// Failed alone, or answered with the message it repeats.
		case w.groups[c.Group].err != nil:
			c.Err = w.groups[c.Group].err
		default:
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
	}
	// Answered only once the whole batch is handed over: a subscriber
	// woken by the first message then finds the others too and writes
	// them in one go, and no woken publisher competes with the hand-over.
	for _, c := range live {
		c.Answer()
	}
}

// writeTx runs the batch's transaction: it reads the last id and the
// enabled triggers of each topic, then, in batch order, inserts each message
// with the id that follows, its idempotency key and a delivery per trigger.
// A call whose key a publish used within the window is a replay instead: it
// gets that publish's message (c.Replay) or, for another topic,
// store.ErrConflict (c.Err), and writes nothing. A later call of the same
// batch with the same key finds the row the earlier one wrote. A topic that
// does not exist sets its group's err and fails only that group. The topics
// table is only read: a commit writes the pages of messages (and of the
// outbox, when there are triggers) alone.
func (w *writer) writeTx(live []*groupcommit.Call, stamp int64) error {
	s := w.s
	// Not a caller's context: once taken, the batch is written whatever
	// happens to the callers, and a context that cannot end spares the
	// driver a goroutine per statement.
	ctx := context.Background()
	return s.writeTx(ctx, func(tx *sql.Tx) error {
		head := tx.StmtContext(ctx, s.stmts.head)
		insert := tx.StmtContext(ctx, s.stmts.insert)
		// Only batches that need them pay for these.
		var insertDelivery, getKey, putKey *sql.Stmt

		for i := range w.groups {
			g := &w.groups[i]
			var lastID int64
			var triggers []byte
			err := head.QueryRowContext(ctx, g.key.app, g.key.topic).Scan(&g.topicID, &lastID, &triggers)
			if errors.Is(err, sql.ErrNoRows) {
				g.err = fmt.Errorf("publish: topic %s: %w", g.key.topic, store.ErrNotFound)
				continue
			}
			if err != nil {
				return err
			}
			g.next = uint64(lastID) + 1
			if string(triggers) != "[]" {
				if err := json.Unmarshal(triggers, &g.triggers); err != nil {
					return fmt.Errorf("triggers of topic %s: %w", g.key.topic, err)
				}
			}
		}

		// A request of a batch publish to a missing topic fails its whole
		// batch before anything of it is written.
		for _, c := range live {
			if g := &w.groups[c.Group]; g.err != nil {
				c.Fail(g.err)
			}
		}

		keyCutoff := stamp - int64(store.IdempotencyWindow)
		for _, c := range live {
			if c.Err != nil {
				continue
			}
			g := &w.groups[c.Group]
			// A batch publish is written inside a savepoint, so that one of
			// its requests failing (a key used with another topic) takes
			// back what the requests before it wrote.
			batched := c.Batched()
			if batched && c.Unit()[0] == c {
				if err := w.beginUnit(ctx, tx); err != nil {
					return err
				}
			}
			if c.Req.IdempotencyKey != "" {
				if getKey == nil {
					getKey = tx.StmtContext(ctx, s.stmts.getIdempotencyKey)
					putKey = tx.StmtContext(ctx, s.stmts.putIdempotencyKey)
				}
				replay, err := replayOf(ctx, getKey, c, keyCutoff)
				if err != nil {
					return err
				}
				if batched && c.Err != nil {
					if err := w.rollbackUnit(ctx, tx); err != nil {
						return err
					}
					continue
				}
				if replay {
					if batched && c.Unit()[len(c.Unit())-1] == c {
						if err := w.endUnit(ctx, tx); err != nil {
							return err
						}
					}
					continue
				}
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
			if c.Req.IdempotencyKey != "" {
				if _, err := putKey.ExecContext(ctx, c.Req.AppID, c.Req.IdempotencyKey, g.topicID, int64(c.ID), stamp); err != nil {
					return err
				}
			}
			if len(g.triggers) > 0 && insertDelivery == nil {
				insertDelivery = tx.StmtContext(ctx, s.stmts.insertDelivery)
			}
			for _, trigger := range g.triggers {
				if _, err := insertDelivery.ExecContext(ctx, store.NewDeliveryID(), trigger, c.Req.AppID, c.Req.Topic, int64(c.ID), body, stamp); err != nil {
					return err
				}
			}
			if batched && c.Unit()[len(c.Unit())-1] == c {
				if err := w.endUnit(ctx, tx); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// beginUnit starts the savepoint of a batch publish and remembers where
// each topic's ids stood.
func (w *writer) beginUnit(ctx context.Context, tx *sql.Tx) error {
	w.saved = w.saved[:0]
	for i := range w.groups {
		w.saved = append(w.saved, w.groups[i].next)
	}
	_, err := tx.ExecContext(ctx, `SAVEPOINT unit`)
	return err
}

// endUnit keeps what a batch publish wrote.
func (w *writer) endUnit(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `RELEASE unit`)
	return err
}

// rollbackUnit takes back what a failed batch publish wrote, and the ids it
// took.
func (w *writer) rollbackUnit(ctx context.Context, tx *sql.Tx) error {
	for i := range w.groups {
		w.groups[i].next = w.saved[i]
	}
	if _, err := tx.ExecContext(ctx, `ROLLBACK TO unit`); err != nil {
		return err
	}
	return w.endUnit(ctx, tx)
}

// replayOf looks c's idempotency key up with getKey and reports whether a
// publish used it after keyCutoff, in which case c is answered: c.Replay
// and c.Msg for the same topic, c.Err (store.ErrConflict) for another one.
func replayOf(ctx context.Context, getKey *sql.Stmt, c *groupcommit.Call, keyCutoff int64) (bool, error) {
	var topic string
	var id, published int64
	var body []byte
	err := getKey.QueryRowContext(ctx, c.Req.AppID, c.Req.IdempotencyKey, keyCutoff).Scan(&topic, &id, &published, &body)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if topic != c.Req.Topic {
		c.Fail(fmt.Errorf("publish: idempotency key used for topic %q: %w", topic, store.ErrConflict))
		return true, nil
	}
	c.Replay = true
	c.Msg = store.Message{
		AppID:       c.Req.AppID,
		Topic:       topic,
		ID:          uint64(id),
		Body:        body,
		PublishedAt: fromUnixNano(published),
	}
	return true, nil
}
