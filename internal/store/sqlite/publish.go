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
	"github.com/heraldhq/herald/internal/store/sqlstore"
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

// writer is the state of the writer goroutine, reused from batch to batch
// so that a batch allocates little.
type writer struct {
	s      *Store
	groups sqlstore.Groups
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
	w := &writer{s: s}
	s.queue.Run(w.commit)
}

// commit writes live in one transaction and answers every call in it (see
// sqlstore for the steps).
func (w *writer) commit(live []*groupcommit.Call) {
	w.groups.Assign(live, nil)
	stamp := max(time.Now().UnixNano(), w.stamp)
	if err := w.writeTx(live, stamp); err != nil {
		sqlstore.FailAll(live, fmt.Errorf("publish: %w", interpretError(err)))
		return
	}
	w.stamp = stamp
	if w.commits++; w.commits%checkpointEvery == 0 {
		w.s.wakeCheckpointer()
	}
	sqlstore.HandOver(live)
	sqlstore.AnswerAll(live)
}

// writeTx runs the batch's transaction: it reads the last id and the
// enabled triggers of each topic, then, in batch order, inserts each message
// with the id that follows, its idempotency key and a delivery per trigger.
// A call whose key a publish used within the window is a replay instead: it
// gets that publish's message (c.Replay) or, for another topic,
// store.ErrConflict (c.Err), and writes nothing. A later call of the same
// batch with the same key finds the row the earlier one wrote: on the one
// write connection a lookup per call costs no round trip, so SQLite needs
// no bookkeeping of the batch's keys in memory, unlike Postgres. A topic
// that does not exist fails only its own calls. The topics table is only
// read: a commit writes the pages of messages (and of the outbox, when there
// are triggers) alone.
func (w *writer) writeTx(live []*groupcommit.Call, stamp int64) error {
	s := w.s
	// Not a caller's context: once taken, the batch is written whatever
	// happens to the callers, and a context that cannot end spares the
	// driver a goroutine per statement.
	ctx := context.Background()
	publishedAt := fromUnixNano(stamp)
	return s.writeTx(ctx, func(tx *sql.Tx) error {
		head := tx.StmtContext(ctx, s.stmts.head)
		insert := tx.StmtContext(ctx, s.stmts.insert)
		// Only batches that need them pay for these.
		var insertDelivery, getKey, putKey *sql.Stmt

		for i := range w.groups.List {
			g := &w.groups.List[i]
			var lastID int64
			var triggers []byte
			err := head.QueryRowContext(ctx, g.Key.App, g.Key.Topic).Scan(&g.TopicID, &lastID, &triggers)
			if errors.Is(err, sql.ErrNoRows) {
				g.Missing = true
				continue
			}
			if err != nil {
				return err
			}
			g.Next = uint64(lastID) + 1
			g.PublishedAt = publishedAt
			if string(triggers) != "[]" {
				if err := json.Unmarshal(triggers, &g.Triggers); err != nil {
					return fmt.Errorf("triggers of topic %s: %w", g.Key.Topic, err)
				}
			}
		}

		// A call to a missing topic fails, and with it the rest of its
		// batch publish, before anything of it is written.
		w.groups.FailMissing(live)

		keyCutoff := stamp - int64(store.IdempotencyWindow)
		for _, c := range live {
			if c.Err != nil {
				continue
			}
			g := &w.groups.List[c.Group]
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
			body := g.Take(c)
			id := int64(c.Msg.ID)
			if _, err := insert.ExecContext(ctx, g.TopicID, id, body, stamp); err != nil {
				return err
			}
			if c.Req.IdempotencyKey != "" {
				if _, err := putKey.ExecContext(ctx, c.Req.AppID, c.Req.IdempotencyKey, g.TopicID, id, stamp); err != nil {
					return err
				}
			}
			if len(g.Triggers) > 0 && insertDelivery == nil {
				insertDelivery = tx.StmtContext(ctx, s.stmts.insertDelivery)
			}
			for _, trigger := range g.Triggers {
				if _, err := insertDelivery.ExecContext(ctx, store.NewDeliveryID(), trigger, c.Req.AppID, c.Req.Topic, id, body, stamp); err != nil {
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
	for i := range w.groups.List {
		w.saved = append(w.saved, w.groups.List[i].Next)
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
	for i := range w.groups.List {
		w.groups.List[i].Next = w.saved[i]
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
	if err := sqlstore.Replay(c, topic, id, body, fromUnixNano(published)); err != nil {
		c.Fail(err)
	}
	return true, nil
}
