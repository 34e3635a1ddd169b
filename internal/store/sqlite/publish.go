package sqlite

import (
	"bytes"
	"context"
	"database/sql/driver"
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
	// conn runs the batches' transactions (see wconn).
	conn wconn
	// heads caches the heads of the topics published to.
	heads heads
	// stamp is the published_at of the last batch committed, in unix
	// nanoseconds. No batch gets an earlier one, so published_at never
	// decreases along a topic's ids even if the wall clock steps back.
	stamp int64
	// commits counts the batches committed.
	commits uint64
	// saved is where each group's next id stood when the batch publish
	// being written began (see beginUnit).
	saved []uint64
	// rows holds the messages not inserted yet, four arguments each (see
	// flushRows).
	rows []any
}

// write is the writer goroutine: it commits batches of publishes until
// Close. It is the only user of the write connection for publishes. Its
// statements go before Close closes the connection.
func (s *Store) write() {
	w := &writer{s: s}
	s.queue.Run(w.commit)
	// Nothing to do with an error: the file is being closed, which
	// finalizes whatever is left.
	_ = w.onConn(func(ctx context.Context, dc any) (bool, error) {
		return false, w.conn.close(dc)
	})
}

// commit writes live in one transaction and answers every call in it (see
// sqlstore for the steps).
func (w *writer) commit(live []*groupcommit.Call) {
	w.groups.Assign(live, nil)
	stamp := max(time.Now().UnixNano(), w.stamp)
	err := w.onConn(func(ctx context.Context, dc any) (bool, error) {
		if w.conn.dc != dc {
			// A new connection counts data versions from its own start:
			// one could match the version the cache was right for on
			// the old connection.
			w.heads.drop()
		}
		if err := w.conn.ready(ctx, dc); err != nil {
			return false, err
		}
		err, bad := w.conn.tx(ctx, func() error { return w.writeTx(ctx, live, stamp) })
		if bad {
			// Its statements go with the connection.
			err = errors.Join(err, w.conn.close(dc))
		}
		if err == nil {
			w.keepHeads()
		}
		return bad, err
	})
	if err != nil {
		// The heads may hold ids the rollback took back.
		w.heads.drop()
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

// keepHeads caches the heads of the batch just committed.
func (w *writer) keepHeads() {
	v, err := w.conn.dataVersion()
	if err != nil {
		// The batch is committed all the same; only the cache cannot
		// tell what it is right for.
		w.heads.drop()
		return
	}
	w.heads.keep(w.groups.List, v)
}

// onConn runs f with the write connection's driver connection, borrowed
// from the write pool for the while. f reports whether the connection is
// bad: the pool then closes it and opens another for the next user.
func (w *writer) onConn(f func(ctx context.Context, dc any) (bad bool, err error)) error {
	// Not a caller's context: once taken, the batch is written whatever
	// happens to the callers, and a context that cannot end spares the
	// driver a goroutine per statement.
	ctx := context.Background()
	conn, err := w.s.wdb.Conn(ctx)
	if err != nil {
		return err
	}
	var ferr error
	rawErr := conn.Raw(func(dc any) error {
		var bad bool
		if bad, ferr = f(ctx, dc); bad {
			return driver.ErrBadConn
		}
		return nil
	})
	if errors.Is(rawErr, driver.ErrBadConn) {
		rawErr = nil // f's own error says what went wrong
	}
	return errors.Join(ferr, rawErr, conn.Close())
}

// writeTx writes the batch in the transaction w.conn runs: it finds the
// head of each topic (its row id, last id and enabled triggers), then, in
// batch order, writes each call (writeCall). A topic that does not exist
// fails only its own calls. The topics table is only read: a commit writes
// the pages of messages (and of the outbox, when there are triggers) alone.
func (w *writer) writeTx(ctx context.Context, live []*groupcommit.Call, stamp int64) error {
	v, err := w.conn.dataVersion()
	if err != nil {
		return err
	}
	w.heads.begin(v)
	w.dropRows()
	publishedAt := fromUnixNano(stamp)
	for i := range w.groups.List {
		g := &w.groups.List[i]
		if err := w.readHead(ctx, g); err != nil {
			return err
		}
		g.PublishedAt = publishedAt
	}

	// A call to a missing topic fails, and with it the rest of its batch
	// publish, before anything of it is written.
	w.groups.FailMissing(live)

	keyCutoff := stamp - int64(store.IdempotencyWindow)
	for _, c := range live {
		if c.Err != nil {
			continue
		}
		if err := w.writeCall(ctx, c, stamp, keyCutoff); err != nil {
			return err
		}
	}
	return w.flushRows(ctx)
}

// writeCall writes one call (putCall). A batch publish is written inside a
// savepoint, begun at its first call and released at its last, so that one
// of its calls failing (a key used with another topic) takes back what the
// calls before it wrote.
func (w *writer) writeCall(ctx context.Context, c *groupcommit.Call, stamp, keyCutoff int64) error {
	unit := c.Unit()
	batched := c.Batched()
	if batched && unit[0] == c {
		if err := w.beginUnit(ctx); err != nil {
			return err
		}
	}
	if err := w.putCall(ctx, c, stamp, keyCutoff); err != nil {
		return err
	}
	switch {
	case !batched:
		return nil
	case c.Err != nil:
		return w.rollbackUnit(ctx)
	case unit[len(unit)-1] == c:
		return w.conn.exec(ctx, wRelease)
	}
	return nil
}

// putCall writes c's message with the id that follows (to w.rows, see
// flushRows), its idempotency key and a delivery per trigger. A call whose key a publish used within
// the window is a replay instead: it gets that publish's message
// (c.Replay) or, for another topic, store.ErrConflict (c.Err), and writes
// nothing. A later call of the same batch with the same key finds the row
// the earlier one wrote: on the one write connection a lookup per call
// costs no round trip, so SQLite needs no bookkeeping of the batch's keys
// in memory, unlike Postgres.
func (w *writer) putCall(ctx context.Context, c *groupcommit.Call, stamp, keyCutoff int64) error {
	wc := &w.conn
	if c.Req.IdempotencyKey != "" {
		if replay, err := w.replayOf(ctx, c, keyCutoff); err != nil || replay {
			return err
		}
	}
	g := &w.groups.List[c.Group]
	body := g.Take(c)
	id := int64(c.Msg.ID)
	w.rows = append(w.rows, g.TopicID, id, body, stamp)
	if c.Req.IdempotencyKey != "" {
		if err := wc.exec(ctx, wPutKey, c.Req.AppID, c.Req.IdempotencyKey, g.TopicID, id, stamp); err != nil {
			return err
		}
	}
	for _, trigger := range g.Triggers {
		if err := wc.exec(ctx, wInsertDelivery, store.NewDeliveryID(), trigger, c.Req.AppID, c.Req.Topic, id, body, stamp); err != nil {
			return err
		}
	}
	return nil
}

// readHead finds g's topic: its row id, the id its next message gets and
// its enabled triggers, or g.Missing; from the cache if it has the topic,
// else with headQuery.
func (w *writer) readHead(ctx context.Context, g *sqlstore.Group) error {
	if h, ok := w.heads.get(g.Key); ok {
		g.TopicID, g.Next, g.Triggers = h.topicID, h.next, h.triggers
		return nil
	}
	row, ok, err := w.conn.queryRow(ctx, wHead, g.Key.App, g.Key.Topic)
	if err != nil {
		return err
	}
	if !ok {
		g.Missing = true
		return nil
	}
	if g.TopicID, err = int64Of(row[0]); err != nil {
		return fmt.Errorf("head of topic %s: %w", g.Key.Topic, err)
	}
	lastID, err := int64Of(row[1])
	if err != nil {
		return fmt.Errorf("head of topic %s: %w", g.Key.Topic, err)
	}
	g.Next = uint64(lastID) + 1
	// Most topics have no triggers: spare them a conversion.
	if s, ok := row[2].(string); ok && s == "[]" {
		return nil
	}
	triggers, err := bytesOf(row[2])
	if err != nil {
		return fmt.Errorf("triggers of topic %s: %w", g.Key.Topic, err)
	}
	if err := json.Unmarshal(triggers, &g.Triggers); err != nil {
		return fmt.Errorf("triggers of topic %s: %w", g.Key.Topic, err)
	}
	return nil
}

// flushRows inserts the messages in w.rows, insertMany at a time while
// there are as many. putCall leaves its message there, so that a batch
// publish's messages go in together; what reads messages or takes writes
// back must flush first (replayOf, beginUnit) or drop them (rollbackUnit),
// and writeTx flushes last.
func (w *writer) flushRows(ctx context.Context) error {
	const n = 4 * insertMany
	rows := w.rows
	for ; len(rows) >= n; rows = rows[n:] {
		if err := w.conn.exec(ctx, wInsertMany, rows[:n]...); err != nil {
			return err
		}
	}
	for ; len(rows) > 0; rows = rows[4:] {
		if err := w.conn.exec(ctx, wInsert, rows[:4]...); err != nil {
			return err
		}
	}
	w.dropRows()
	return nil
}

// dropRows forgets the messages in w.rows.
func (w *writer) dropRows() {
	clear(w.rows) // the bodies are the callers'
	w.rows = w.rows[:0]
}

// beginUnit starts the savepoint of a batch publish and remembers where
// each topic's ids stood. The messages written before it go in first, so
// that a rollback to it keeps them.
func (w *writer) beginUnit(ctx context.Context) error {
	if err := w.flushRows(ctx); err != nil {
		return err
	}
	w.saved = w.saved[:0]
	for i := range w.groups.List {
		w.saved = append(w.saved, w.groups.List[i].Next)
	}
	return w.conn.exec(ctx, wSavepoint)
}

// rollbackUnit takes back what a failed batch publish wrote, and the ids it
// took. The messages not inserted yet are all of the batch publish
// (beginUnit flushed the others): they are dropped.
func (w *writer) rollbackUnit(ctx context.Context) error {
	for i := range w.groups.List {
		w.groups.List[i].Next = w.saved[i]
	}
	w.dropRows()
	if err := w.conn.exec(ctx, wRollbackTo); err != nil {
		return err
	}
	return w.conn.exec(ctx, wRelease)
}

// replayOf looks c's idempotency key up and reports whether a publish used
// it after keyCutoff, in which case c is answered: c.Replay and c.Msg for
// the same topic, c.Err (store.ErrConflict) for another one.
func (w *writer) replayOf(ctx context.Context, c *groupcommit.Call, keyCutoff int64) (bool, error) {
	// The key may be one an earlier call of the batch used: its message
	// must be in, for the lookup to find its body.
	if err := w.flushRows(ctx); err != nil {
		return false, err
	}
	row, ok, err := w.conn.queryRow(ctx, wGetKey, c.Req.AppID, c.Req.IdempotencyKey, keyCutoff)
	if err != nil || !ok {
		return false, err
	}
	topic, ok := row[0].(string)
	if !ok {
		return false, fmt.Errorf("idempotency key: topic column is %T, not text", row[0])
	}
	id, err := int64Of(row[1])
	if err != nil {
		return false, fmt.Errorf("idempotency key: %w", err)
	}
	published, err := int64Of(row[2])
	if err != nil {
		return false, fmt.Errorf("idempotency key: %w", err)
	}
	body, err := bytesOf(row[3])
	if err != nil {
		return false, fmt.Errorf("idempotency key: %w", err)
	}
	// The answer keeps the body: a copy of its own, whatever the driver
	// does with its values.
	if err := sqlstore.Replay(c, topic, id, bytes.Clone(body), fromUnixNano(published)); err != nil {
		c.Fail(err)
	}
	return true, nil
}
