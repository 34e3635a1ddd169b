package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
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
	select {
	case s.publishc <- c:
	case <-ctx.Done():
		s.recycle(c)
		return store.Message{}, fmt.Errorf("publish: %w", ctx.Err())
	case <-s.closing:
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
	// n is how many calls of the batch publish to the topic.
	n int
	// topicID is the topic's row id; err is set instead when the topic
	// does not exist.
	topicID int64
	err     error
	// next is the id the next call of the group gets.
	next uint64
}

// writer is the state of the writer goroutine, reused from batch to batch.
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
	tBegin, tBump, tInsert, tCommit time.Duration
	slow                            int
	tSlow                           time.Duration
}

// write is the writer goroutine: it commits batches of publishes until
// Close. It is the only user of the write connection for publishes.
func (s *Store) write() {
	w := &writer{
		s:     s,
		batch: make([]*publishCall, 0, s.opts.MaxBatch),
		index: make(map[topicKey]int),
	}
	hist := map[int]int{}
	var busy time.Duration
	start := time.Now()
	defer func() { fmt.Println("batch sizes", hist, "busy", busy, "of", time.Since(start), w.tBegin, w.tBump, w.tInsert, w.tCommit, "slow", w.slow, w.tSlow) }()
	for {
		var first *publishCall
		select {
		case first = <-s.publishc:
		case <-s.closing:
			return
		}
		batch := append(w.batch[:0], first)
		for {
			n := len(batch)
			runtime.Gosched()
		gather:
			for len(batch) < s.opts.MaxBatch {
				select {
				case c := <-s.publishc:
					batch = append(batch, c)
				default:
					break gather
				}
			}
			if len(batch) == n || len(batch) >= s.opts.MaxBatch {
				break
			}
		}
		hist[len(batch)]++
		t0 := time.Now()
		w.commit(batch)
		busy += time.Since(t0)
		clear(batch)
		w.batch = batch
	}
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
		w.groups[g].n++
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
	if w.commits++; w.commits%checkpointEvery == 0 && os.Getenv("NOCKPT") == "" {
		w.s.wakeCheckpointer()
	}

	publishedAt := fromUnixNano(stamp)
	for _, c := range live {
		g := &w.groups[c.group]
		if g.err != nil {
			c.err = g.err
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
func (w *writer) writeTx(live []*publishCall, stamp int64) (err error) {
	s := w.s
	// Not a caller's context: once taken, the batch is written whatever
	// happens to the callers, and a context that cannot end spares the
	// driver a goroutine per statement.
	ctx := context.Background()
	t0 := time.Now()
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	t1 := time.Now()
	defer func() { w.tBegin += t1.Sub(t0) }()
	defer func() {
		if err != nil {
			if rbErr := tx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
				err = errors.Join(err, rbErr)
			}
		}
	}()
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

	t2 := time.Now()
	w.tBump += t2.Sub(t1)
	defer func() { w.tCommit += time.Since(t2) }()
	for _, c := range live {
		g := &w.groups[c.group]
		if g.err != nil {
			continue
		}
		body := []byte(c.req.Body)
		if body == nil {
			body = []byte{}
		}
		c.id = g.next
		g.next++
		if _, err := insert.ExecContext(ctx, g.topicID, int64(c.id), body, stamp); err != nil {
			return err
		}
	}
	t3 := time.Now()
	w.tInsert += t3.Sub(t2)
	w.tCommit -= t3.Sub(t2)
	err = tx.Commit()
	if d := time.Since(t3); d > time.Millisecond {
		w.slow++
		w.tSlow += d
	}
	return err
}
