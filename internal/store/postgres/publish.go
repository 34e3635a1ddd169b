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
	"github.com/heraldhq/herald/internal/store/sqlstore"
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
		return store.Message{}, sqlstore.TopicNotFound(req.Topic)
	}
	if !storable(req.IdempotencyKey) {
		// It would fail the batch's statements, and every publish with it.
		return store.Message{}, errors.New("publish: idempotency key is not valid UTF-8 or holds NUL")
	}
	return s.queue.Submit(ctx, req)
}

// PublishBatch stores reqs in one transaction, all or nothing (see
// store.Store). The writer commits them, next to each other, in a batch
// with other publishes; when one of them fails, the writer answers the
// batch publish and runs the transaction again without it, so that it takes
// no ids. An error wrapping ErrCommitUnknown means the messages may have
// been stored all the same.
func (s *Store) PublishBatch(ctx context.Context, reqs []store.PublishRequest) ([]store.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	select {
	case <-s.closing:
		return nil, fmt.Errorf("publish: %w", store.ErrClosed)
	default:
	}
	for i, req := range reqs {
		if !storable(req.AppID) || !storable(req.Topic) {
			return nil, &store.ItemError{Index: i, Err: sqlstore.TopicNotFound(req.Topic)}
		}
		if !storable(req.IdempotencyKey) {
			return nil, &store.ItemError{Index: i, Err: errors.New("publish: idempotency key is not valid UTF-8 or holds NUL")}
		}
	}
	return s.queue.SubmitBatch(ctx, reqs)
}

// compareKeys orders topics by app, then name, bytewise: the order in which
// every writer, on every node, locks a batch's topic rows, so that two
// batches that share topics never wait for each other in a circle.
func compareKeys(a, b sqlstore.TopicKey) int {
	return cmp.Or(cmp.Compare(a.App, b.App), cmp.Compare(a.Topic, b.Topic))
}

// idemKey names an idempotency key.
type idemKey struct{ app, key string }

// advanceQuery locks topic ($1, $2) and takes $3 ids from it: it returns
// the topic's row id, its new last id (the batch's messages get the $3 ids
// up to it) and the publish stamp, which never goes back along the topic's
// ids whatever the clock does. The row lock holds until the commit, so a
// batch on another node that publishes to the topic waits, then reads the
// committed last id: ids commit in order, without gaps.
//
// It also returns the ids of the topic's enabled triggers, which costs an
// index probe and no statement. They are read with the statement's
// snapshot, taken before it waited for the lock, so they may include a
// trigger that DeleteTrigger deleted meanwhile (it holds the same lock
// while it deletes); insertWithDeliveriesQuery, a later statement, skips
// those.
const advanceQuery = `
	UPDATE herald.topics
	SET last_id = last_id + $3, published_at = greatest(published_at, clock_timestamp())
	WHERE app_id = $1 AND name = $2
	RETURNING id, last_id, published_at,
		ARRAY(SELECT tr.id FROM herald.triggers tr WHERE tr.topic_id = topics.id AND NOT tr.disabled)`

// xactIDQuery returns the id of the current transaction, with which the
// writer can ask, after losing the connection during COMMIT, whether the
// commit happened.
const xactIDQuery = `SELECT pg_current_xact_id()::text`

// insertQuery inserts a batch's messages in one statement, from arrays of
// topic row ids, ids, bodies and stamps.
const insertQuery = `
	INSERT INTO herald.messages (topic_id, id, body, published_at)
	SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::timestamptz[])`

// insertWithDeliveriesQuery is insertQuery ($1…$4) that also enqueues the
// messages' deliveries, pending and due at their message's stamp, from
// arrays of delivery ids, trigger ids, app ids, topic names, topic row ids
// and message ids ($5…$10). It joins the deliveries to the rows the insert
// returns, not to the messages table: a body crosses the network once
// however many triggers its topic has, and no index of messages is read,
// whatever plan the statistics of a young table would suggest. The join
// with triggers drops the deliveries of a trigger deleted since
// advanceQuery read it: this statement sees every deletion that committed
// before the batch took its topic locks, and none can commit after, so no
// delivery breaks the foreign key (which would fail the whole batch).
const insertWithDeliveriesQuery = `
	WITH m AS (` + insertQuery + `
		RETURNING topic_id, id, body, published_at)
	INSERT INTO herald.deliveries (id, trigger_id, app_id, topic, message_id, body, published_at,
		state, attempts, next_at, created_at, updated_at)
	SELECT d.id, d.trigger_id, d.app_id, d.topic, m.id, m.body, m.published_at,
		'pending', 0, m.published_at, m.published_at, m.published_at
	FROM unnest($5::text[], $6::text[], $7::text[], $8::text[], $9::bigint[], $10::bigint[])
		AS d(id, trigger_id, app_id, topic, topic_id, message_id)
	JOIN m ON m.topic_id = d.topic_id AND m.id = d.message_id
	JOIN herald.triggers tr ON tr.id = d.trigger_id`

// getKeysQuery reads the publishes that used the keys ($1[i], $2[i])
// within the window $3 of the transaction's start. The body is NULL once
// Prune deleted the message.
const getKeysQuery = `
	SELECT k.app, k.key, t.name, i.message_id, i.published_at, m.body
	FROM unnest($1::text[], $2::text[]) AS k(app, key)
	JOIN herald.idempotency i ON i.app_id = k.app AND i.key = k.key
	JOIN herald.topics t ON t.id = i.topic_id
	LEFT JOIN herald.messages m ON m.topic_id = i.topic_id AND m.id = i.message_id
	WHERE i.created_at > now() - $3::interval`

// putKeysQuery records the keys of a batch's publishes, from arrays of
// app ids, keys, topic row ids, message ids and stamps, in key order, so
// that two batches wait for each other's keys in one order. A key's window
// starts at its message's stamp (created_at), as in the SQLite store. A
// row for a key that has expired is taken over; one that has not (another
// node committed the key since getKeysQuery, or commits it while this
// waits) is left alone, and the writer, seeing fewer rows than keys, runs
// the batch again: it then finds the key and replays it.
const putKeysQuery = `
	INSERT INTO herald.idempotency AS i (app_id, key, topic_id, message_id, published_at, created_at)
	SELECT k.app, k.key, k.topic_id, k.message_id, k.published_at, k.published_at
	FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::timestamptz[])
		AS k(app, key, topic_id, message_id, published_at)
	ORDER BY k.app, k.key
	ON CONFLICT (app_id, key) DO UPDATE SET
		topic_id = excluded.topic_id, message_id = excluded.message_id,
		published_at = excluded.published_at, created_at = excluded.created_at
	WHERE i.created_at <= now() - $6::interval`

// errNotSent marks a batch attempt that failed before anything reached the
// database (its BEGIN), which can always be tried again.
var errNotSent = errors.New("transaction not begun")

// errUnitFailed means a batch publish of the batch failed (Call.Fail) after
// the transaction began: the writer answers it and runs the transaction
// again without it.
var errUnitFailed = errors.New("a batch publish failed")

// errKeyRace means another transaction committed an idempotency key of the
// batch after the batch looked it up: the batch rolls back and runs again.
var errKeyRace = errors.New("idempotency key committed by another transaction meanwhile")

// writer is the state of the writer goroutine, reused from batch to batch
// so that a batch allocates little.
type writer struct {
	s *Store
	// groups are the batch's topics in lock order. A group's N counts the
	// calls that store a message in it (replays and conflicts do not); a
	// group with none takes no lock. Triggers come with the lock (see
	// advanceQuery).
	groups sqlstore.Groups
	// keys maps each idempotency key of the batch to the first call (its
	// index in live) that carries it; replayOf gives, by index in live,
	// the earlier call of the batch that a call repeats, or -1.
	keys     map[idemKey]int
	replayOf []int
	// The columns of the batch's message insert.
	topicIDs []int64
	ids      []int64
	bodies   [][]byte
	stamps   []time.Time
	// The columns of the batch's delivery insert.
	deliveryIDs, deliveryTriggers []string
	deliveryApps, deliveryNames   []string
	deliveryTopics, deliveryMsgs  []int64
	// The columns of the batch's idempotency keys.
	keyApps, keyKeys   []string
	keyTopics, keyMsgs []int64
	keyStamps          []time.Time
	// tx is the transaction of the current attempt, nil until its first
	// round trip began it.
	tx pgx.Tx
	// ticket is the batch's place in the order of CommittedFunc calls
	// across writers, when ticketed (see sequencer).
	ticket   uint64
	ticketed bool
	// pass hands the turn to gather a batch to the next writer once only
	// this one's COMMIT is left (see groupcommit.Queue.RunTurns): the next
	// batch gathers what arrived meanwhile, and its BEGIN and lock
	// requests overlap this one's commit.
	pass func()
}

// write is a writer goroutine: it commits batches of publishes until Close.
// Options.Writers of them share the queue.
func (s *Store) write() {
	w := &writer{s: s, keys: make(map[idemKey]int)}
	s.queue.RunTurns(s.turns, func(live []*groupcommit.Call, pass func()) {
		w.pass = pass
		w.commit(live)
		w.pass = nil
	})
}

// commit writes live in one transaction and answers every call in it.
func (w *writer) commit(live []*groupcommit.Call) {
	w.groups.Assign(live, compareKeys)

	var err error
	for attempt := 1; ; attempt++ {
		err = w.writeTx(live)
		if errors.Is(err, errUnitFailed) {
			// Not counted as an attempt: each run drops at least one
			// batch publish.
			live = w.dropFailed(live)
			attempt--
			if len(live) == 0 {
				return
			}
			continue
		}
		again := retryable(err) || errors.Is(err, errKeyRace) || errors.Is(err, errNotSent)
		if err == nil || !again {
			break
		}
		if attempt == maxTxAttempts {
			err = fmt.Errorf("publish: gave up after %d attempts: %w", attempt, interpretError(err))
			break
		}
	}
	if err != nil {
		sqlstore.FailAll(live, err)
		return
	}

	// Committed. A call that repeats an earlier one of the batch gets its
	// answer, before that one is answered (and its Call reused).
	for i, c := range live {
		if j := w.replayOf[i]; j >= 0 {
			if owner := live[j]; owner.Err != nil {
				c.Err = owner.Err
			} else {
				c.Msg = owner.Msg
			}
		}
	}
	// Batch order is id order within each topic, and the sequencer puts
	// the writers' batches in commit order per topic.
	if w.ticketed {
		w.s.seq.await(w.ticket)
		defer w.finishTicket()
	}
	sqlstore.HandOver(live)
	w.finishTicket()
	sqlstore.AnswerAll(live)
}

// finishTicket lets the batches after this one hand their messages over.
func (w *writer) finishTicket() {
	if w.ticketed {
		w.s.seq.finish(w.ticket)
		w.ticketed = false
	}
}

// writeTx makes one attempt at the batch's transaction: it looks up the
// batch's idempotency keys, locks the batch's topics in order and takes
// their ids, reads their enabled triggers, inserts the messages, their
// deliveries and their keys, runs BeforeCommit and commits. It sets each
// live call's Msg, Replay or Err and each group's missing; a topic that
// does not exist, or a key used with another topic, fails only its own
// calls. The error it returns is the one every call of the batch gets.
func (w *writer) writeTx(live []*groupcommit.Call) (err error) {
	s := w.s
	// Not a caller's context: once taken, the batch is written whatever
	// happens to the callers. The timeout keeps a hung connection from
	// stopping the writer for good.
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.WriteTimeout)
	defer cancel()

	// What an earlier attempt found no longer holds.
	for _, c := range live {
		c.Replay, c.Err, c.Msg = false, nil, store.Message{}
	}
	for i := range w.groups.List {
		g := &w.groups.List[i]
		g.N, g.Missing, g.Triggers = 0, false, g.Triggers[:0]
	}

	// The transaction begins in its first round trip (see send).
	w.tx = nil
	defer func() {
		if err != nil {
			// Not committed: nothing of this attempt is handed over.
			w.finishTicket()
		}
	}()
	finished := false
	defer func() {
		if !finished && w.tx != nil {
			// Nothing to do about a failed rollback: the transaction never
			// sent COMMIT, so it cannot commit, and pgx closes the
			// connection, which ends it.
			_ = w.tx.Rollback(context.WithoutCancel(ctx))
		}
		w.tx = nil
	}()

	if err := w.findReplays(ctx, live); err != nil {
		return err
	}
	// A conflict in a batch publish fails all of it (Fail keeps the
	// first of the unit's errors).
	failed := false
	for _, c := range live {
		if c.Err != nil {
			c.Fail(c.Err)
			failed = failed || c.Batched()
		}
	}
	if failed {
		return errUnitFailed
	}
	// No group is missing yet: stores counts every call that will store,
	// should its topic exist.
	for i, c := range live {
		if w.stores(i, c) {
			w.groups.List[c.Group].N++
		}
	}

	// One round trip: the topic locks, in order, then the transaction's id
	// (and the BEGIN, unless findReplays sent it).
	b := w.batch()
	locks := 0
	for i := range w.groups.List {
		g := &w.groups.List[i]
		if g.N > 0 {
			b.Queue(advanceQuery, g.Key.App, g.Key.Topic, g.N)
			locks++
		}
	}
	if locks == 0 {
		return nil // every call is a replay or a conflict: nothing to write
	}
	b.Queue(xactIDQuery)
	results, err := w.send(ctx, b)
	if err != nil {
		return err
	}
	found := 0
	for i := range w.groups.List {
		g := &w.groups.List[i]
		if g.N == 0 {
			continue
		}
		var lastID int64
		err := results.QueryRow().Scan(&g.TopicID, &lastID, &g.PublishedAt, &g.Triggers)
		g.Missing = errors.Is(err, pgx.ErrNoRows)
		if g.Missing {
			continue
		}
		if err != nil {
			_ = results.Close() // the error that matters is err
			return w.txError("lock topics", err)
		}
		g.Next = uint64(lastID-g.N) + 1
		g.PublishedAt = g.PublishedAt.UTC()
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
	// A batch publish to a missing topic fails all of it, and the ids
	// taken for the rest of it must be given back: roll back, run again.
	if w.groups.FailMissing(live) {
		return errUnitFailed
	}
	if found == 0 {
		return nil // every topic is missing: nothing to write, roll back
	}
	// The batch holds its topics' locks: any batch that shares a topic
	// with it and commits later takes a later ticket.
	w.ticket, w.ticketed = s.seq.take(), true

	w.columns(live)
	defer func() {
		clear(w.bodies) // drop the references to the bodies
	}()
	// The hooks get the messages ordered by (app, topic, id).
	var msgs []store.Message
	if s.opts.BeforeCommit != nil || s.opts.QueueBeforeCommitFunc != nil {
		msgs = make([]store.Message, 0, len(w.ids))
		for i, c := range live {
			if w.stores(i, c) {
				msgs = append(msgs, c.Msg)
			}
		}
		// Stable: within a topic, batch order is id order.
		slices.SortStableFunc(msgs, func(a, b store.Message) int {
			return compareKeys(sqlstore.TopicKey{App: a.AppID, Topic: a.Topic}, sqlstore.TopicKey{App: b.AppID, Topic: b.Topic})
		})
	}
	// One round trip: the messages with their deliveries, their keys,
	// then what QueueBeforeCommitFunc queues.
	b = w.batch()
	if len(w.deliveryIDs) == 0 {
		b.Queue(insertQuery, w.topicIDs, w.ids, w.bodies, w.stamps)
	} else {
		b.Queue(insertWithDeliveriesQuery, w.topicIDs, w.ids, w.bodies, w.stamps,
			w.deliveryIDs, w.deliveryTriggers, w.deliveryApps, w.deliveryNames, w.deliveryTopics, w.deliveryMsgs)
	}
	if len(w.keyKeys) > 0 {
		b.Queue(putKeysQuery, w.keyApps, w.keyKeys, w.keyTopics, w.keyMsgs, w.keyStamps, store.IdempotencyWindow)
	}
	queued := b.Len()
	if f := s.opts.QueueBeforeCommitFunc; f != nil {
		if err := f(b, msgs); err != nil {
			return beforeCommitError(err)
		}
	}
	queued = b.Len() - queued
	results = w.tx.SendBatch(ctx, b)
	if _, err := results.Exec(); err != nil {
		_ = results.Close()
		return w.txError("insert", err)
	}
	if len(w.keyKeys) > 0 {
		tag, err := results.Exec()
		if err != nil {
			_ = results.Close()
			return w.txError("idempotency keys", err)
		}
		if tag.RowsAffected() != int64(len(w.keyKeys)) {
			_ = results.Close()
			return errKeyRace // run the batch again: it will find the key
		}
	}
	for range queued {
		if _, err := results.Exec(); err != nil {
			_ = results.Close()
			return beforeCommitError(err)
		}
	}
	if err := results.Close(); err != nil {
		return w.txError("insert", err)
	}

	if f := s.opts.BeforeCommit; f != nil {
		if err := f(ctx, w.tx, msgs); err != nil {
			return beforeCommitError(err)
		}
	}

	// Only the commit is left: the next batch may gather and start.
	w.pass()
	finished = true
	if err := w.tx.Commit(ctx); err != nil {
		return s.commitFailed(err, xactID)
	}
	return nil
}

// dropFailed answers the calls of live whose batch publish failed and
// returns the others, in order, in live's array.
func (w *writer) dropFailed(live []*groupcommit.Call) []*groupcommit.Call {
	kept := live[:0]
	for _, c := range live {
		if c.Failed() {
			c.Answer()
			continue
		}
		kept = append(kept, c)
	}
	clear(live[len(kept):])
	return kept
}

// stores reports whether live call i, c, stores a message in this
// attempt: it is not a replay nor a conflict, and its topic exists.
func (w *writer) stores(i int, c *groupcommit.Call) bool {
	return w.replayOf[i] < 0 && !c.Replay && c.Err == nil && !w.groups.List[c.Group].Missing
}

// findReplays sorts out the batch's idempotency keys: it sets replayOf for
// a call whose key an earlier call of the batch carries, and reads the
// keys committed within the window, making their calls replays (c.Replay,
// c.Msg) or, for another topic, conflicts (c.Err). A batch without keys
// costs no round trip.
func (w *writer) findReplays(ctx context.Context, live []*groupcommit.Call) error {
	clear(w.keys)
	w.replayOf = w.replayOf[:0]
	var apps, keys []string
	for i, c := range live {
		w.replayOf = append(w.replayOf, -1)
		if c.Req.IdempotencyKey == "" {
			continue
		}
		k := idemKey{c.Req.AppID, c.Req.IdempotencyKey}
		j, seen := w.keys[k]
		if !seen {
			w.keys[k] = i
			apps, keys = append(apps, k.app), append(keys, k.key)
			continue
		}
		if live[j].Req.Topic != c.Req.Topic {
			c.Err = sqlstore.KeyConflict(live[j].Req.Topic)
			continue
		}
		w.replayOf[i] = j
		c.Replay = true
	}
	if len(keys) == 0 {
		return nil
	}

	b := w.batch()
	b.Queue(getKeysQuery, apps, keys, store.IdempotencyWindow)
	results, err := w.send(ctx, b)
	if err != nil {
		return err
	}
	defer func() { _ = results.Close() }() // rows.Err has the error that matters
	rows, err := results.Query()
	if err != nil {
		return w.txError("idempotency keys", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k idemKey
		var topic string
		var id int64
		var published time.Time
		var body []byte
		if err := rows.Scan(&k.app, &k.key, &topic, &id, &published, &body); err != nil {
			return w.txError("idempotency keys", err)
		}
		// The first call with the key, and those that repeat it.
		first := w.keys[k]
		for i := first; i < len(live); i++ {
			c := live[i]
			if i != first && w.replayOf[i] != first {
				continue
			}
			w.replayOf[i] = -1
			c.Replay = false
			c.Err = sqlstore.Replay(c, topic, id, body, published.UTC())
		}
	}
	if err := rows.Err(); err != nil {
		return w.txError("idempotency keys", err)
	}
	return nil
}

// columns gives each call that stores a message its id and message, and
// fills the columns of the batch's inserts: messages, deliveries and keys.
func (w *writer) columns(live []*groupcommit.Call) {
	w.topicIDs, w.ids, w.bodies, w.stamps = w.topicIDs[:0], w.ids[:0], w.bodies[:0], w.stamps[:0]
	w.deliveryIDs, w.deliveryTriggers = w.deliveryIDs[:0], w.deliveryTriggers[:0]
	w.deliveryApps, w.deliveryNames = w.deliveryApps[:0], w.deliveryNames[:0]
	w.deliveryTopics, w.deliveryMsgs = w.deliveryTopics[:0], w.deliveryMsgs[:0]
	w.keyApps, w.keyKeys, w.keyTopics, w.keyMsgs, w.keyStamps = w.keyApps[:0], w.keyKeys[:0], w.keyTopics[:0], w.keyMsgs[:0], w.keyStamps[:0]
	for i, c := range live {
		if !w.stores(i, c) {
			continue
		}
		g := &w.groups.List[c.Group]
		body := g.Take(c)
		id := int64(c.Msg.ID)
		w.topicIDs = append(w.topicIDs, g.TopicID)
		w.ids = append(w.ids, id)
		w.bodies = append(w.bodies, body)
		w.stamps = append(w.stamps, g.PublishedAt)
		for _, trigger := range g.Triggers {
			w.deliveryIDs = append(w.deliveryIDs, store.NewDeliveryID())
			w.deliveryTriggers = append(w.deliveryTriggers, trigger)
			w.deliveryApps = append(w.deliveryApps, c.Req.AppID)
			w.deliveryNames = append(w.deliveryNames, c.Req.Topic)
			w.deliveryTopics = append(w.deliveryTopics, g.TopicID)
			w.deliveryMsgs = append(w.deliveryMsgs, id)
		}
		if key := c.Req.IdempotencyKey; key != "" {
			w.keyApps = append(w.keyApps, c.Req.AppID)
			w.keyKeys = append(w.keyKeys, key)
			w.keyTopics = append(w.keyTopics, g.TopicID)
			w.keyMsgs = append(w.keyMsgs, id)
			w.keyStamps = append(w.keyStamps, g.PublishedAt)
		}
	}
}

// beforeCommitError wraps an error of a BeforeCommit hook: a retryable one
// as it is, so that the batch runs again, hook included.
func beforeCommitError(err error) error {
	if retryable(err) {
		return err
	}
	return fmt.Errorf("publish: before commit: %w", err)
}

// batch returns a new batch of statements for the attempt's transaction:
// its first one begins the transaction, unless an earlier round trip did.
func (w *writer) batch() *pgx.Batch {
	b := &pgx.Batch{}
	if w.tx == nil {
		b.BeginTx(pgx.TxOptions{})
	}
	return b
}

// send sends b, from batch, in the attempt's transaction. The first
// batch of an attempt begins the transaction in its own round trip, which
// saves the one of a separate BEGIN; send then reads the BEGIN's result,
// so that the caller reads its own statements' results.
func (w *writer) send(ctx context.Context, b *pgx.Batch) (pgx.BatchResults, error) {
	if w.tx != nil {
		return w.tx.SendBatch(ctx, b), nil
	}
	results := w.s.pool.SendBatch(ctx, b)
	w.tx = results.Tx()
	if _, err := results.Exec(); err != nil {
		_ = results.Close() // the error that matters is err
		// Nothing that could commit was written: the batch may safely try
		// again, on another connection (a pooled one can be found dead
		// only when used).
		return nil, fmt.Errorf("publish: begin: %w: %w", errNotSent, interpretError(err))
	}
	return results, nil
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
