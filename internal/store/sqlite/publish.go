package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/heraldhq/herald/internal/store"
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
	c := s.calls.Get().(*publishCall)
	c.ctx, c.req = ctx, req
	s.sending.Add(1)
	select {
	case s.publishc <- c:
		// The writer took c and counted it out of s.sending.
	case <-ctx.Done():
		s.sending.Add(-1)
		s.recycle(c)
		return store.Message{}, fmt.Errorf("publish: %w", ctx.Err())
	case <-s.closing:
		s.sending.Add(-1)
		s.recycle(c)
		return store.Message{}, fmt.Errorf("publish: %w", store.ErrClosed)
	}
	<-c.done
	msg, err := c.msg, c.err
	s.recycle(c)
	return msg, err
}

// publishCall is one Publish on its way through the writer. The writer owns
// it from the moment it receives it until it sends on done.
type publishCall struct {
	ctx context.Context
	req store.PublishRequest
	// group is the index of the call's topic in the writer's groups.
	group int
	// id is the id the writer gave the message.
	id uint64
	// msg or err is the answer.
	msg store.Message
	err error
	// done receives one value once the call is answered. It has room for
	// it, so the writer never waits for the caller.
	done chan struct{}
}

// recycle puts c back in the pool, with no references to the call it held.
func (s *Store) recycle(c *publishCall) {
	done := c.done
	*c = publishCall{done: done}
	s.calls.Put(c)
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
	batch  []*publishCall
	live   []*publishCall
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
	w := &writer{
		s:     s,
		batch: make([]*publishCall, 0, s.opts.MaxBatch),
		index: make(map[topicKey]int),
	}
	for {
		var first *publishCall
		select {
		case first = <-s.publishc:
			s.sending.Add(-1)
		case <-s.closing:
			return
		}
		batch := w.gather(first)
		w.commit(batch)
		clear(batch)
		w.batch = batch[:0]
	}
}

// gather returns a batch of first and the calls that come right after it.
// A commit costs about the same for one message as for many, so it pays to
// wait for the calls already on their way: it yields once, so that
// publishers woken by the last batch can run, then takes calls for as long
// as a Publish is about to send one, up to Options.MaxBatch. It never
// waits for a call that has not begun.
func (w *writer) gather(first *publishCall) []*publishCall {
	s := w.s
	batch := append(w.batch[:0], first)
	runtime.Gosched()
	for len(batch) < s.opts.MaxBatch {
		select {
		case c := <-s.publishc:
			s.sending.Add(-1)
			batch = append(batch, c)
			continue
		default:
		}
		if s.sending.Load() == 0 {
			break
		}
		runtime.Gosched()
	}
	return batch
}

// commit writes batch in one transaction and answers every call in it.
func (w *writer) commit(batch []*publishCall) {
	// A call whose caller gave up before the writer took it is not written.
	live := w.live[:0]
	for _, c := range batch {
		if err := c.ctx.Err(); err != nil {
			c.err = fmt.Errorf("publish: %w", err)
			c.done <- struct{}{}
			continue
		}
		live = append(live, c)
	}
	defer func() {
		clear(live)
		w.live = live[:0]
	}()
	if len(live) == 0 {
		return
	}

	clear(w.index)
	w.groups = w.groups[:0]
	for _, c := range live {
		k := topicKey{c.req.AppID, c.req.Topic}
		g, ok := w.index[k]
		if !ok {
			g = len(w.groups)
			w.groups = append(w.groups, topicGroup{key: k})
			w.index[k] = g
		}
		c.group = g
	}

	stamp := max(time.Now().UnixNano(), w.stamp)
	if err := w.writeTx(live, stamp); err != nil {
		err = fmt.Errorf("publish: %w", interpretError(err))
		for _, c := range live {
			c.err = err
			c.done <- struct{}{}
		}
		return
	}
	w.stamp = stamp
	if w.commits++; w.commits%checkpointEvery == 0 {
		w.s.wakeCheckpointer()
	}

	publishedAt := fromUnixNano(stamp)
	for _, c := range live {
		if err := w.groups[c.group].err; err != nil {
			c.err = err
		} else {
			c.msg = store.Message{
				AppID:       c.req.AppID,
				Topic:       c.req.Topic,
				ID:          c.id,
				Body:        c.req.Body,
				PublishedAt: publishedAt,
			}
			if f := c.req.CommittedFunc; f != nil {
				f(c.msg)
			}
		}
		c.done <- struct{}{}
	}
}

// writeTx runs the batch's transaction: it reads the last id of each topic,
// then inserts the messages in batch order with the ids that follow. A topic
// that does not exist sets its group's err and fails only that group. The
// topics table is only read: a commit writes the pages of messages alone.
func (w *writer) writeTx(live []*publishCall, stamp int64) error {
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
			g := &w.groups[c.group]
			if g.err != nil {
				continue
			}
			body := []byte(c.req.Body)
			if body == nil {
				// NULL would break NOT NULL; the store does not judge bodies.
				body = []byte{}
			}
			c.id = g.next
			g.next++
			if _, err := insert.ExecContext(ctx, g.topicID, int64(c.id), body, stamp); err != nil {
				return err
			}
		}
		return nil
	})
}
