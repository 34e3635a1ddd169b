package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/groupcommit"
)

// Publish stores one message and returns it once committed. The request
// goes to the writer, which commits it together with the other publishes
// waiting at that moment (see the package doc). A request whose ctx ends
// before the writer takes it is not written and gets ctx.Err(); once taken,
// it is written and Publish waits for the outcome. An error wrapping
// ErrCommitUnknown means the message may have been stored all the same.
func (s *Store) Publish(ctx context.Context, req store.PublishRequest) (store.Message, error) {
	if err := ctx.Err(); err != nil {
		return store.Message{}, fmt.Errorf("publish: %w", err)
	}
	select {
	case <-s.closing:
		return store.Message{}, fmt.Errorf("publish: %w", store.ErrClosed)
	default:
	}
	if !storable(req.AppID) || !storable(req.Topic) {
		return store.Message{}, fmt.Errorf("publish: topic %q: %w", req.Topic, store.ErrNotFound)
	}
	return s.queue.Submit(ctx, req)
}

// topicKey names a topic.
type topicKey struct{ app, topic string }

// compareKeys orders topics by app, then name, bytewise: the order in which
// every writer, on every node, locks a batch's topic rows, so that two
// batches that share topics never wait for each other in a circle.
func compareKeys(a, b topicKey) int {
	return cmp.Or(cmp.Compare(a.app, b.app), cmp.Compare(a.topic, b.topic))
}

// topicGroup is what one batch publishes to one topic.
type topicGroup struct {
	key topicKey
	// n is how many of the batch's calls publish to the topic.
	n int64
	// What the topic's row said once locked: missing is set when there is
	// no such topic; otherwise topicID is its row id, next the id of the
	// group's first message, and publishedAt the stamp of its messages.
	missing     bool
	topicID     int64
	next        uint64
	publishedAt time.Time
}

// advanceQuery locks topic ($1, $2) and takes $3 ids from it: it returns
// the topic's row id, its new last id (the batch's messages get the $3 ids
// up to it) and the publish stamp, which never goes back along the topic's
// ids whatever the clock does. The row lock holds until the commit, so a
// batch on another node that publishes to the topic waits, then reads the
// committed last id: ids commit in order, without gaps.
const advanceQuery = `
	UPDATE herald.topics
	SET last_id = last_id + $3, published_at = greatest(published_at, clock_timestamp())
	WHERE app_id = $1 AND name = $2
	RETURNING id, last_id, published_at`

// xactIDQuery returns the id of the current transaction, with which the
// writer can ask, after losing the connection during COMMIT, whether the
// commit happened.
const xactIDQuery = `SELECT pg_current_xact_id()::text`

// insertQuery inserts a batch's messages in one statement, from arrays of
// topic row ids, ids, bodies and stamps.
const insertQuery = `
	INSERT INTO herald.messages (topic_id, id, body, published_at)
	SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::timestamptz[])`

// writer is the state of the writer goroutine, reused from batch to batch
// so that a batch allocates little.
type writer struct {
	s      *Store
	groups []topicGroup
	index  map[topicKey]int
	// The columns of the batch's insert.
	topicIDs []int64
	ids      []int64
	bodies   [][]byte
	stamps   []time.Time
}

// write is the writer goroutine: it commits batches of publishes until
// Close. It is the only goroutine of the store that publishes.
func (s *Store) write() {
	w := &writer{s: s, index: make(map[topicKey]int)}
	s.queue.Run(w.commit)
}

// commit writes live in one transaction and answers every call in it.
func (w *writer) commit(live []*groupcommit.Call) {
	// Group the calls by topic, the groups in lock order.
	clear(w.index)
	w.groups = w.groups[:0]
	for _, c := range live {
		k := topicKey{c.Req.AppID, c.Req.Topic}
		if _, ok := w.index[k]; !ok {
			w.index[k] = len(w.groups)
			w.groups = append(w.groups, topicGroup{key: k})
		}
	}
	slices.SortFunc(w.groups, func(a, b topicGroup) int { return compareKeys(a.key, b.key) })
	for i := range w.groups {
		w.index[w.groups[i].key] = i
	}
	for _, c := range live {
		c.Group = w.index[topicKey{c.Req.AppID, c.Req.Topic}]
		w.groups[c.Group].n++
	}

	var err error
	for attempt := 1; ; attempt++ {
		err = w.writeTx(live)
		if err == nil || !retryable(err) {
			break
		}
		if attempt == maxTxAttempts {
			err = fmt.Errorf("publish: gave up after %d attempts: %w", attempt, interpretError(err))
			break
		}
	}
	if err != nil {
		for _, c := range live {
			c.Err = err
			c.Answer()
		}
		return
	}

	// Committed. Batch order is id order within each topic, and this is the
	// only goroutine that calls CommittedFunc.
	for _, c := range live {
		g := &w.groups[c.Group]
		if g.missing {
			c.Err = fmt.Errorf("publish: topic %q: %w", g.key.topic, store.ErrNotFound)
		} else if f := c.Req.CommittedFunc; f != nil {
			f(c.Msg)
		}
		c.Answer()
	}
}

// writeTx makes one attempt at the batch's transaction: it locks the
// batch's topics in order and takes their ids, inserts the messages, runs
// BeforeCommit and commits. It sets each live call's msg and each group's
// missing; a topic that does not exist fails only its own calls. The error
// it returns is the one every call of the batch gets.
func (w *writer) writeTx(live []*groupcommit.Call) (err error) {
	s := w.s
	// Not a caller's context: once taken, the batch is written whatever
	// happens to the callers. The timeout keeps a hung connection from
	// stopping the writer for good.
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.WriteTimeout)
	defer cancel()

	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("publish: begin: %w", interpretError(err))
	}
	finished := false
	defer func() {
		if !finished {
			// Nothing to do about a failed rollback: the transaction never
			// sent COMMIT, so it cannot commit, and pgx closes the
			// connection, which ends it.
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()

	// One round trip: the topic locks, in order, then the transaction's id.
	var b pgx.Batch
	for i := range w.groups {
		g := &w.groups[i]
		b.Queue(advanceQuery, g.key.app, g.key.topic, g.n)
	}
	b.Queue(xactIDQuery)
	results := tx.SendBatch(ctx, &b)
	found := 0
	for i := range w.groups {
		g := &w.groups[i]
		var lastID int64
		err := results.QueryRow().Scan(&g.topicID, &lastID, &g.publishedAt)
		g.missing = errors.Is(err, pgx.ErrNoRows)
		if g.missing {
			continue
		}
		if err != nil {
			_ = results.Close() // the error that matters is err
			return w.txError("lock topics", err)
		}
		g.next = uint64(lastID-g.n) + 1
		g.publishedAt = g.publishedAt.UTC()
		found++
	}
	var xactID string
	if err := results.QueryRow().Scan(&xactID); err != nil {
		_ = results.Close()
		return w.txError("transaction id", err)
	}
	if err := results.Close(); err != nil {
		return w.txError("lock topics", err)
	}
	if found == 0 {
		return nil // every topic is missing: nothing to write, roll back
	}

	w.topicIDs, w.ids, w.bodies, w.stamps = w.topicIDs[:0], w.ids[:0], w.bodies[:0], w.stamps[:0]
	for _, c := range live {
		g := &w.groups[c.Group]
		if g.missing {
			continue
		}
		body := []byte(c.Req.Body)
		if body == nil {
			body = []byte{} // NULL would break NOT NULL; the store does not judge bodies
		}
		c.Msg = store.Message{
			AppID:       c.Req.AppID,
			Topic:       c.Req.Topic,
			ID:          g.next,
			Body:        c.Req.Body,
			PublishedAt: g.publishedAt,
		}
		g.next++
		w.topicIDs = append(w.topicIDs, g.topicID)
		w.ids = append(w.ids, int64(c.Msg.ID))
		w.bodies = append(w.bodies, body)
		w.stamps = append(w.stamps, g.publishedAt)
	}
	defer func() {
		clear(w.bodies) // drop the references to the bodies
	}()
	if _, err := tx.Exec(ctx, insertQuery, w.topicIDs, w.ids, w.bodies, w.stamps); err != nil {
		return w.txError("insert", err)
	}

	if f := s.opts.BeforeCommit; f != nil {
		msgs := make([]store.Message, 0, len(w.ids))
		for _, c := range live {
			if !w.groups[c.Group].missing {
				msgs = append(msgs, c.Msg)
			}
		}
		// Stable: within a topic, batch order is id order.
		slices.SortStableFunc(msgs, func(a, b store.Message) int {
			return compareKeys(topicKey{a.AppID, a.Topic}, topicKey{b.AppID, b.Topic})
		})
		if err := f(ctx, tx, msgs); err != nil {
			if retryable(err) {
				return err // run the batch again, BeforeCommit included
			}
			return fmt.Errorf("publish: before commit: %w", err)
		}
	}

	finished = true
	if err := tx.Commit(ctx); err != nil {
		return s.commitFailed(err, xactID)
	}
	return nil
}

// txError wraps an error of the statement named by what: a retryable one
// as it is, so that commit sees its code, any other translated.
func (w *writer) txError(what string, err error) error {
	if retryable(err) {
		return err
	}
	return fmt.Errorf("publish: %s: %w", what, interpretError(err))
}

// commitFailed returns what a failed COMMIT of the transaction xactID means
// for the batch: nil if it committed after all, and otherwise the error for
// every call in it.
//
// When Postgres answers COMMIT with an error, or when pgx never sent it, the
// transaction rolled back. When the connection breaks after COMMIT was sent
// (the server went away, the network failed, the timeout hit), the commit
// may have happened. Then commitFailed asks the server, on another
// connection, what became of the transaction, for as long as
// Options.WriteTimeout allows. Committed counts as success; rolled back
// is an ordinary error; no answer gives ErrCommitUnknown, and never success.
func (s *Store) commitFailed(err error, xactID string) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) || errors.Is(err, pgx.ErrTxCommitRollback) || pgconn.SafeToRetry(err) {
		if retryable(err) {
			return err
		}
		return fmt.Errorf("publish: commit: %w", interpretError(err))
	}
	status, statusErr := s.xactStatus(xactID)
	switch status {
	case "committed":
		return nil
	case "aborted":
		return fmt.Errorf("publish: commit: the transaction rolled back: %w", interpretError(err))
	}
	if statusErr == nil {
		statusErr = fmt.Errorf("transaction %s is %s", xactID, status)
	}
	return fmt.Errorf("publish: %w: %w (asking the server: %w)", ErrCommitUnknown, interpretError(err), interpretError(statusErr))
}

// xactStatus asks the server what became of transaction xactID:
// "committed", "aborted", or, if the server cannot tell before
// Options.WriteTimeout, the last answer ("in progress", say) and error. A
// transaction whose client went away during COMMIT stays "in progress"
// until its server process finishes the commit or notices and aborts it.
func (s *Store) xactStatus(xactID string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.WriteTimeout)
	defer cancel()
	const pause = 20 * time.Millisecond
	timer := time.NewTimer(pause)
	defer timer.Stop()
	for {
		var status *string
		err := s.pool.QueryRow(ctx, `SELECT pg_xact_status($1::text::xid8)`, xactID).Scan(&status)
		if err == nil && status != nil && (*status == "committed" || *status == "aborted") {
			return *status, nil
		}
		last := "unknown"
		if status != nil {
			last = *status
		}
		timer.Reset(pause)
		select {
		case <-ctx.Done():
			if err == nil {
				err = ctx.Err()
			}
			return last, err
		case <-timer.C:
		}
	}
}
