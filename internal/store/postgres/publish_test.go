package postgres_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/postgres"
	"github.com/heraldhq/herald/internal/store/storetest"
)

// committedLog records the CommittedFunc calls of one store.
type committedLog struct {
	inFlight atomic.Int32
	overlaps atomic.Int32
	mu       sync.Mutex // guards ids
	ids      []uint64
}

// add is the CommittedFunc.
func (l *committedLog) add(m store.Message) {
	if l.inFlight.Add(1) != 1 {
		l.overlaps.Add(1)
	}
	l.mu.Lock()
	l.ids = append(l.ids, m.ID)
	l.mu.Unlock()
	l.inFlight.Add(-1)
}

// Two nodes publish to one topic at once: ids come out 1..n with no gap or
// duplicate, in commit order, because the topic row is the counter and its
// lock is held until commit, whichever node holds it.
func TestTwoNodesOneTopic(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dbURL := pgtest.NewDatabase(t)
	nodes := []*postgres.Store{openStore(t, dbURL, postgres.Options{}), openStore(t, dbURL, postgres.Options{})}
	logs := []*committedLog{{}, {}}
	setupTopic(t, nodes[0], "app", "hot")
	const publishers, total = 8, 1000

	got := make([][]store.Message, publishers)
	errs := make([]error, publishers)
	// Every publisher waits after its first publish until all have made
	// theirs, so both nodes hold the topic in turn whatever the scheduler
	// does (a quiet machine could otherwise run one node's publishers to
	// the end before the other's start, and the cross-node lock would go
	// untested).
	var firsts sync.WaitGroup
	firsts.Add(publishers)
	var wg sync.WaitGroup
	for p := range publishers {
		node := p % len(nodes)
		wg.Go(func() {
			for i := range total / publishers {
				msg, err := nodes[node].Publish(ctx, store.PublishRequest{
					AppID: "app", Topic: "hot",
					Body:          fmt.Appendf(nil, `{"p":%d,"i":%d}`, p, i),
					CommittedFunc: logs[node].add,
				})
				if i == 0 {
					firsts.Done()
					firsts.Wait()
				}
				if err != nil {
					errs[p] = err
					return
				}
				got[p] = append(got[p], msg)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}

	var all []uint64
	bodies := make(map[uint64]string)
	for p, msgs := range got {
		for i, m := range msgs {
			require.Equal(t, fmt.Sprintf(`{"p":%d,"i":%d}`, p, i), string(m.Body))
			bodies[m.ID] = string(m.Body)
			all = append(all, m.ID)
		}
	}
	slices.Sort(all)
	require.Equal(t, storetest.Seq(1, total), all, "ids given")

	var committed []uint64
	for i, l := range logs {
		require.Zero(t, l.overlaps.Load(), "node %d: CommittedFunc calls overlapped", i)
		require.NotEmpty(t, l.ids, "node %d published nothing", i)
		for j := 1; j < len(l.ids); j++ {
			require.Greater(t, l.ids[j], l.ids[j-1], "node %d: CommittedFunc out of order", i)
		}
		committed = append(committed, l.ids...)
	}
	slices.Sort(committed)
	require.Equal(t, storetest.Seq(1, total), committed, "ids seen by CommittedFunc")
	// The nodes took turns on the topic rather than one after the other
	// (the barrier above makes sure of it): otherwise this test would not
	// test the cross-node lock.
	require.Less(t, logs[0].ids[0], logs[1].ids[len(logs[1].ids)-1])
	require.Less(t, logs[1].ids[0], logs[0].ids[len(logs[0].ids)-1])

	for _, node := range nodes {
		msgs, err := node.History(ctx, "app", "hot", 0, 2*total)
		require.NoError(t, err)
		require.Equal(t, storetest.Seq(1, total), storetest.IDs(msgs))
		for _, m := range msgs {
			require.Equal(t, bodies[m.ID], string(m.Body))
		}
		topic, err := node.GetTopic(ctx, "app", "hot")
		require.NoError(t, err)
		require.Equal(t, uint64(total), topic.LastID)
	}
}

// checkBatchOrder returns an error unless msgs, as BeforeCommit gets them,
// are ordered by (app, topic, id) with each topic's ids consecutive. It
// returns the number of topics in the batch.
func checkBatchOrder(msgs []store.Message) (int, error) {
	if len(msgs) == 0 {
		return 0, errors.New("BeforeCommit with no messages")
	}
	topics := 1
	for i := 1; i < len(msgs); i++ {
		a, b := msgs[i-1], msgs[i]
		switch c := cmp.Or(cmp.Compare(a.AppID, b.AppID), cmp.Compare(a.Topic, b.Topic)); {
		case c > 0:
			return topics, fmt.Errorf("%s/%s before %s/%s", a.AppID, a.Topic, b.AppID, b.Topic)
		case c < 0:
			topics++
		case b.ID != a.ID+1:
			return topics, fmt.Errorf("%s/%s: id %d after %d", b.AppID, b.Topic, b.ID, a.ID)
		}
	}
	return topics, nil
}

// Two nodes publish to many topics of two apps, each publisher going round
// them from a different start and in either direction: batches that share
// topics lock them in one order, and every topic counts 1..n. BeforeCommit
// sees each batch ordered by (app, topic, id).
func TestTwoNodesManyTopics(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	// Postgres would break a deadlock after deadlock_timeout (1s) and the
	// store would run the batch again, hiding it. Here a deadlock holds
	// until WriteTimeout and fails the publishes instead: batches must
	// never deadlock in the first place.
	dbURL := withParams(t, pgtest.NewDatabase(t), map[string]string{"deadlock_timeout": "1h"})
	var orderErr atomic.Pointer[error]
	var multiTopic atomic.Bool
	opts := postgres.Options{WriteTimeout: 5 * time.Second, BeforeCommit: func(_ context.Context, _ pgx.Tx, msgs []store.Message) error {
		n, err := checkBatchOrder(msgs)
		if err != nil {
			orderErr.CompareAndSwap(nil, &err)
		}
		if n > 1 {
			multiTopic.Store(true)
		}
		return nil
	}}
	nodes := []*postgres.Store{openStore(t, dbURL, opts), openStore(t, dbURL, opts)}
	type topicRef struct{ app, name string }
	// Apps sort before names: (app-a, zz) comes before (app-b, aa).
	var topics []topicRef
	for _, app := range []string{"app-b", "app-a"} {
		require.NoError(t, nodes[0].CreateApp(ctx, store.App{ID: app, Name: app}, nil))
		for _, name := range []string{"zz", "aa", "mm", "Zz"} {
			_, _, err := nodes[0].CreateTopic(ctx, app, name)
			require.NoError(t, err)
			topics = append(topics, topicRef{app, name})
		}
	}
	const publishers, rounds = 8, 15

	errs := make([]error, publishers)
	var wg sync.WaitGroup
	for p := range publishers {
		node := nodes[p%len(nodes)]
		wg.Go(func() {
			for r := range rounds {
				for i := range topics {
					ti := (p + i) % len(topics)
					if p%4 >= 2 {
						ti = (p - i + len(topics)) % len(topics)
					}
					tr := topics[ti]
					if _, err := node.Publish(ctx, store.PublishRequest{AppID: tr.app, Topic: tr.name, Body: fmt.Appendf(nil, `[%d,%d]`, p, r)}); err != nil {
						errs[p] = err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	if err := orderErr.Load(); err != nil {
		require.NoError(t, *err, "BeforeCommit's messages")
	}
	// Eight publishers keep the writers busy: batches hold several topics,
	// or the order above went untested.
	require.True(t, multiTopic.Load(), "no batch held more than one topic")
	for _, tr := range topics {
		msgs, err := nodes[1].History(ctx, tr.app, tr.name, 0, 1000)
		require.NoError(t, err)
		require.Equal(t, storetest.Seq(1, publishers*rounds), storetest.IDs(msgs), "%s/%s", tr.app, tr.name)
	}
}

// A BeforeCommit that fails rolls the batch back: nothing stored, no id
// taken, no CommittedFunc, and the error reaches the caller.
func TestBeforeCommitErrorRollsBack(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	errBoom := errors.New("boom")
	var fail atomic.Bool
	var sawLastID atomic.Int64
	st := openStore(t, pgtest.NewDatabase(t), postgres.Options{
		BeforeCommit: func(ctx context.Context, tx pgx.Tx, msgs []store.Message) error {
			if !fail.Load() {
				return nil
			}
			// Inside the transaction the ids are taken...
			var lastID int64
			if err := tx.QueryRow(ctx, `SELECT last_id FROM herald.topics WHERE app_id = $1 AND name = $2`,
				msgs[0].AppID, msgs[0].Topic).Scan(&lastID); err != nil {
				return err
			}
			sawLastID.Store(lastID)
			return fmt.Errorf("notify: %w", errBoom)
		},
	})
	setupTopic(t, st, "app", "t")
	for i := range 2 {
		msg, err := st.Publish(ctx, store.PublishRequest{AppID: "app", Topic: "t", Body: []byte(`"ok"`)})
		require.NoError(t, err)
		require.Equal(t, uint64(i+1), msg.ID)
	}

	fail.Store(true)
	called := false
	_, err := st.Publish(ctx, store.PublishRequest{
		AppID: "app", Topic: "t", Body: []byte(`"doomed"`),
		CommittedFunc: func(store.Message) { called = true },
	})
	require.ErrorIs(t, err, errBoom)
	require.False(t, called, "CommittedFunc called for a rolled-back publish")
	require.Equal(t, int64(3), sawLastID.Load(), "BeforeCommit ran after the ids were taken")

	// ...and given back.
	msgs, err := st.History(ctx, "app", "t", 0, 10)
	require.NoError(t, err)
	require.Equal(t, []uint64{1, 2}, storetest.IDs(msgs))
	topic, err := st.GetTopic(ctx, "app", "t")
	require.NoError(t, err)
	require.Equal(t, uint64(2), topic.LastID)

	fail.Store(false)
	msg, err := st.Publish(ctx, store.PublishRequest{AppID: "app", Topic: "t", Body: []byte(`"next"`)})
	require.NoError(t, err)
	require.Equal(t, uint64(3), msg.ID)
}

// A pg_notify sent from BeforeCommit is delivered if and only if the
// publish committed.
func TestBeforeCommitNotifyOnlyWhenCommitted(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dbURL := pgtest.NewDatabase(t)
	listener := listenX(t, dbURL)

	errRefused := errors.New("refused")
	st := openStore(t, dbURL, postgres.Options{
		BeforeCommit: func(ctx context.Context, tx pgx.Tx, msgs []store.Message) error {
			for _, m := range msgs {
				if _, err := tx.Exec(ctx, `SELECT pg_notify('x', $1)`, fmt.Sprintf("%d:%s", m.ID, m.Body)); err != nil {
					return err
				}
			}
			// Notified first, then failed: the notification must not
			// escape the rollback.
			if slices.ContainsFunc(msgs, func(m store.Message) bool { return string(m.Body) == `"fail"` }) {
				return errRefused
			}
			return nil
		},
	})
	setupTopic(t, st, "app", "t")

	for _, body := range []string{`"one"`, `"fail"`, `"two"`, `"fail"`, `"three"`} {
		_, err := st.Publish(ctx, store.PublishRequest{AppID: "app", Topic: "t", Body: []byte(body)})
		if body == `"fail"` {
			require.ErrorIs(t, err, errRefused)
		} else {
			require.NoError(t, err)
		}
	}

	requireNotified(t, listener, `1:"one"`, `2:"two"`, `3:"three"`)
}

// listenX returns a connection to dbURL that LISTENs on channel x.
func listenX(t *testing.T, dbURL string) *pgx.Conn {
	t.Helper()
	listener := connect(t, dbURL)
	_, err := listener.Exec(t.Context(), `LISTEN x`)
	require.NoError(t, err)
	return listener
}

// requireNotified requires the next notifications on listener's channel x
// to carry want, in order. Notifications arrive in commit order, so had a
// rolled-back one escaped, it would come before the next committed one.
func requireNotified(t *testing.T, listener *pgx.Conn, want ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for _, w := range want {
		n, err := listener.WaitForNotification(ctx)
		require.NoError(t, err)
		require.Equal(t, "x", n.Channel)
		require.Equal(t, w, n.Payload)
	}
}

// What QueueBeforeCommitFunc queues commits with the messages, in their
// round trip, or rolls back with them: a hook that fails, or a queued
// statement that fails, fails the publish and stores nothing, and its
// notification never escapes. Both hooks run, the queued statements first.
func TestQueueBeforeCommit(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dbURL := pgtest.NewDatabase(t)
	listener := listenX(t, dbURL)

	errRefused := errors.New("refused")
	var hooks []string
	var mu sync.Mutex // guards hooks
	st := openStore(t, dbURL, postgres.Options{
		QueueBeforeCommitFunc: func(b *pgx.Batch, msgs []store.Message) error {
			mu.Lock()
			hooks = append(hooks, "queue")
			mu.Unlock()
			for _, m := range msgs {
				b.Queue(`SELECT pg_notify('x', $1)`, fmt.Sprintf("%d:%s", m.ID, m.Body))
				switch string(m.Body) {
				case `"refuse"`:
					return errRefused
				case `"fail"`:
					// Notified first, then failed: the notification must
					// not escape the rollback.
					b.Queue(`SELECT 1 / 0`)
				}
			}
			return nil
		},
		BeforeCommit: func(context.Context, pgx.Tx, []store.Message) error {
			mu.Lock()
			hooks = append(hooks, "tx")
			mu.Unlock()
			return nil
		},
	})
	setupTopic(t, st, "app", "t")

	for _, body := range []string{`"one"`, `"refuse"`, `"two"`, `"fail"`, `"three"`} {
		_, err := st.Publish(ctx, store.PublishRequest{AppID: "app", Topic: "t", Body: []byte(body)})
		switch body {
		case `"refuse"`:
			require.ErrorIs(t, err, errRefused)
		case `"fail"`:
			var pe *pgconn.PgError
			require.ErrorAs(t, err, &pe)
			require.Equal(t, "22012", pe.Code, "division by zero")
		default:
			require.NoError(t, err)
		}
	}
	mu.Lock()
	require.Equal(t, []string{"queue", "tx", "queue", "queue", "tx", "queue", "queue", "tx"}, hooks)
	mu.Unlock()

	msgs, err := st.History(ctx, "app", "t", 0, 10)
	require.NoError(t, err)
	require.Equal(t, []uint64{1, 2, 3}, storetest.IDs(msgs))
	requireNotified(t, listener, `1:"one"`, `2:"two"`, `3:"three"`)
}

// The connection breaks while the batch commits. The store asks the server
// what became of the transaction: it reports success only for a commit it
// knows happened, and never success when it cannot find out. A retry with
// the publish's idempotency key stores the message at most once. The proxy
// cuts the COMMIT of the connection that sent the message's body.
func TestCommitLostConnection(t *testing.T) {
	t.Parallel()

	type bundle struct {
		st     *postgres.Store
		proxy  *pgtest.Proxy
		direct string // dbURL, bypassing the proxy
		log    *committedLog
	}
	setup := func(t *testing.T, opts postgres.Options) *bundle {
		t.Helper()
		dbURL := pgtest.NewDatabase(t)
		proxy := pgtest.NewProxy(t, dbURL)
		st := openStore(t, proxy.URL(dbURL), opts)
		setupTopic(t, st, "app", "t")
		return &bundle{st: st, proxy: proxy, direct: dbURL, log: &committedLog{}}
	}
	publish := func(t *testing.T, b *bundle, body, key string) (store.Message, error) {
		t.Helper()
		return b.st.Publish(t.Context(), store.PublishRequest{
			AppID: "app", Topic: "t", Body: []byte(body), IdempotencyKey: key, CommittedFunc: b.log.add,
		})
	}
	// storedIDs reads the topic's ids on a connection of its own, not
	// through the store or the proxy.
	storedIDs := func(t *testing.T, b *bundle) []uint64 {
		t.Helper()
		rows, err := connect(t, b.direct).Query(t.Context(),
			`SELECT m.id FROM herald.messages m JOIN herald.topics t ON t.id = m.topic_id ORDER BY m.id`)
		require.NoError(t, err)
		got, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		require.NoError(t, err)
		out := []uint64{}
		for _, id := range got {
			out = append(out, uint64(id))
		}
		return out
	}

	t.Run("CommittedButUnheard", func(t *testing.T) {
		t.Parallel()
		b := setup(t, postgres.Options{})
		tripped := b.proxy.ArmCommit(pgtest.CutAfterCommit, `"lost answer"`)
		msg, err := publish(t, b, `"lost answer"`, "k-1")
		require.NoError(t, err, "the commit happened: the store must find out")
		requireClosed(t, tripped, "the proxy never cut the connection")
		require.Equal(t, uint64(1), msg.ID)
		require.Equal(t, []uint64{1}, b.log.ids)
		require.Equal(t, []uint64{1}, storedIDs(t, b))

		again, err := publish(t, b, `"lost answer"`, "k-1")
		require.NoError(t, err)
		require.Equal(t, uint64(1), again.ID, "the retry gets the stored message")
		require.Equal(t, []uint64{1}, storedIDs(t, b), "and stores nothing")
		msg, err = publish(t, b, `"after"`, "")
		require.NoError(t, err)
		require.Equal(t, uint64(2), msg.ID)
	})

	t.Run("NeverCommitted", func(t *testing.T) {
		t.Parallel()
		b := setup(t, postgres.Options{})
		tripped := b.proxy.ArmCommit(pgtest.CutBeforeCommit, `"lost commit"`)
		_, err := publish(t, b, `"lost commit"`, "k-1")
		require.Error(t, err)
		requireClosed(t, tripped, "the proxy never cut the connection")
		require.NotErrorIs(t, err, postgres.ErrCommitUnknown, "the server knows it rolled back")
		require.Empty(t, b.log.ids)
		require.Empty(t, storedIDs(t, b))

		msg, err := publish(t, b, `"lost commit"`, "k-1")
		require.NoError(t, err, "the key of a rolled-back publish is free")
		require.Equal(t, uint64(1), msg.ID, "the rolled-back id is given again")
		require.Equal(t, []uint64{1}, storedIDs(t, b))
	})

	t.Run("OutcomeUnknown", func(t *testing.T) {
		t.Parallel()
		// The store gives up asking after WriteTimeout.
		b := setup(t, postgres.Options{WriteTimeout: time.Second})
		tripped := b.proxy.ArmCommit(pgtest.BlackoutAfterCommit, `"in doubt"`)
		_, err := publish(t, b, `"in doubt"`, "k-1")
		requireClosed(t, tripped, "the proxy never cut the connection")
		require.ErrorIs(t, err, postgres.ErrCommitUnknown)
		require.Empty(t, b.log.ids, "CommittedFunc for a commit the store could not confirm")
		// This is the doubt: the message is there, but its Publish failed.
		require.Equal(t, []uint64{1}, storedIDs(t, b))

		b.proxy.Refuse(false)
		again, err := publish(t, b, `"in doubt"`, "k-1")
		require.NoError(t, err, "the retry the error invites")
		require.Equal(t, uint64(1), again.ID, "it gets the message stored in doubt")
		require.Equal(t, []uint64{1}, storedIDs(t, b), "stored once")
		msg, err := publish(t, b, `"after"`, "")
		require.NoError(t, err)
		require.Equal(t, uint64(2), msg.ID)
	})
}

// requireClosed checks that c is closed.
func requireClosed(t *testing.T, c <-chan struct{}, msg string) {
	t.Helper()
	select {
	case <-c:
	default:
		require.Fail(t, msg)
	}
}

// BenchmarkPublish measures accepted publishes from 8 concurrent
// publishers, each committed before Publish returns, as 8 HTTP publishers
// would: to one topic, and spread over 8. Under plain the store only
// stores; under notify a BeforeCommit sends one pg_notify (about 100 bytes)
// per topic of each batch, as the cluster broadcaster does, and a listener
// drains them. publishes/s is b.N over the elapsed time.
//
//	go test -run x -bench Publish -count 3 ./internal/store/postgres/
//
// writers=N runs the store with Options.Writers N: 1 is one batch in
// flight at a time.
func BenchmarkPublish(b *testing.B) {
	for _, mode := range []string{"plain", "notify"} {
		b.Run(mode, func(b *testing.B) {
			for _, topics := range []int{1, 8} {
				for _, writers := range []int{1, 4} {
					b.Run(fmt.Sprintf("topics=%d/writers=%d", topics, writers), func(b *testing.B) {
						benchmarkPublish(b, mode == "notify", topics, writers)
					})
				}
			}
		})
	}
}

func benchmarkPublish(b *testing.B, notify bool, topics, writers int) {
	b.Helper()
	ctx := context.Background()
	dbURL := pgtest.NewDatabase(b)
	opts := postgres.Options{Writers: writers}
	var batches atomic.Int64
	if notify {
		opts.BeforeCommit = benchNotify(b, dbURL, &batches)
	}
	st, err := postgres.Open(ctx, dbURL, opts)
	require.NoError(b, err)
	b.Cleanup(func() { require.NoError(b, st.Close()) })
	storetest.BenchPublish(b, st, topics, 0)
	if n := batches.Load(); n > 0 {
		b.ReportMetric(float64(b.N)/float64(n), "publishes/batch")
	}
}

// benchNotify returns a BeforeCommit that sends one pg_notify (about 100
// bytes) per topic of each batch, as the cluster broadcaster does, and
// counts the batches; a listener drains the notifications.
func benchNotify(b *testing.B, dbURL string, batches *atomic.Int64) func(context.Context, pgx.Tx, []store.Message) error {
	b.Helper()
	listen(b, dbURL, "herald_bench")
	return func(ctx context.Context, tx pgx.Tx, msgs []store.Message) error {
		batches.Add(1)
		var payloads []string
		for i, m := range msgs {
			if i+1 < len(msgs) && msgs[i+1].Topic == m.Topic && msgs[i+1].AppID == m.AppID {
				continue // one per topic: its newest id
			}
			p := fmt.Sprintf(`{"app":%q,"topic":%q,"id":%d,"node":"node-1"`, m.AppID, m.Topic, m.ID)
			payloads = append(payloads, p+`,"pad":"`+strings.Repeat("x", max(0, 100-len(p)-10))+`"}`)
		}
		_, err := tx.Exec(ctx, `SELECT pg_notify('herald_bench', p) FROM unnest($1::text[]) AS p`, payloads)
		return err
	}
}

// BenchmarkPublishBatch measures batch publishes of 100 messages from 8
// concurrent publishers, each to its own of 8 topics, with the notify
// hook of BenchmarkPublish, as the server's batch publish on Postgres
// does. Besides messages/s it reports the CPU time the database's server
// processes spent per message (pg-µs/msg, from /proc/PID/schedstat),
// which other load on the machine disturbs less than the rate.
//
//	go test -run x -bench PublishBatch -benchtime 3s -count 3 ./internal/store/postgres/
func BenchmarkPublishBatch(b *testing.B) {
	ctx := context.Background()
	dbURL := pgtest.NewDatabase(b)
	var batches atomic.Int64
	st, err := postgres.Open(ctx, dbURL, postgres.Options{BeforeCommit: benchNotify(b, dbURL, &batches)})
	require.NoError(b, err)
	b.Cleanup(func() { require.NoError(b, st.Close()) })
	conn := connect(b, dbURL)
	before := backendCPU(b, conn, nil)
	storetest.BenchPublishBatch(b, st, 8, 100)
	b.StopTimer()
	var spent time.Duration
	for pid, cpu := range backendCPU(b, conn, before) {
		spent += cpu - before[pid]
	}
	b.ReportMetric(float64(spent.Microseconds())/float64(b.N*100), "pg-µs/msg")
}

// backendCPU returns the CPU time so far of each server process of conn's
// database, by pid; the pids of known are read too, should they have ended
// meanwhile (their time then counts as not spent). The server must run on
// this machine.
func backendCPU(b *testing.B, conn *pgx.Conn, known map[int32]time.Duration) map[int32]time.Duration {
	b.Helper()
	rows, err := conn.Query(context.Background(), `SELECT pid FROM pg_stat_activity WHERE datname = current_database()`)
	require.NoError(b, err)
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	require.NoError(b, err)
	for pid := range known {
		pids = append(pids, pid)
	}
	cpu := make(map[int32]time.Duration, len(pids))
	for _, pid := range pids {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", pid))
		if err != nil {
			cpu[pid] = known[pid] // ended
			continue
		}
		var ns int64
		_, err = fmt.Sscan(string(raw), &ns)
		require.NoError(b, err, "/proc/%d/schedstat", pid)
		cpu[pid] = time.Duration(ns)
	}
	return cpu
}

// BenchmarkPublishTriggers is the plain BenchmarkPublish to one topic with
// 0, 1 and 10 enabled triggers: each publish also enqueues a delivery per
// trigger in its transaction.
func BenchmarkPublishTriggers(b *testing.B) {
	for _, triggers := range []int{0, 1, 10} {
		b.Run(fmt.Sprintf("triggers=%d", triggers), func(b *testing.B) {
			st, err := postgres.Open(context.Background(), pgtest.NewDatabase(b), postgres.Options{})
			require.NoError(b, err)
			b.Cleanup(func() { require.NoError(b, st.Close()) })
			storetest.BenchPublish(b, st, 1, triggers)
		})
	}
}

// listen starts a connection that LISTENs on channel of dbURL and drains
// its notifications until b ends, as a cluster node's listener would.
func listen(b *testing.B, dbURL, channel string) {
	b.Helper()
	conn, err := pgx.Connect(context.Background(), dbURL)
	require.NoError(b, err)
	_, err = conn.Exec(context.Background(), "LISTEN "+pgx.Identifier{channel}.Sanitize())
	require.NoError(b, err)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			if _, err := conn.WaitForNotification(ctx); err != nil {
				return // ctx ended
			}
		}
	})
	b.Cleanup(func() {
		cancel()
		wg.Wait()
		_ = conn.Close(context.Background())
	})
}
