package pgnotify_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/broadcast"
	"github.com/heraldhq/herald/internal/broadcast/cluster"
	"github.com/heraldhq/herald/internal/broadcast/cluster/clustertest"
	"github.com/heraldhq/herald/internal/broadcast/pgnotify"
	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/internal/store/postgres"
	"github.com/heraldhq/herald/internal/store/storetest"
)

// metric reads one of the broadcaster's metrics by name.
func metric(t require.TestingT, bc *cluster.Broadcaster, name string) float64 {
	for _, c := range bc.Collectors() {
		ch := make(chan *prometheus.Desc, 1)
		c.Describe(ch)
		if strings.Contains((<-ch).String(), `"`+name+`"`) {
			return testutil.ToFloat64(c)
		}
	}
	require.FailNow(t, "no such metric", name)
	return 0
}

// proxiedPair starts two nodes on a fresh database, b listening through a
// fault-injecting proxy, and creates topic in app "app".
func proxiedPair(t *testing.T, topic string) (a, b *node, proxy *pgtest.Proxy) {
	t.Helper()
	db := pgtest.NewDatabase(t)
	proxy = pgtest.NewProxy(t, db)
	a = newNode(t, db, nodeOptions{})
	b = newNode(t, db, nodeOptions{listenURL: proxy.URL(db)})
	ensureTopic(t, a.store, "app", topic)
	return a, b, proxy
}

// TestListenerTerminated kills the listener's backend: the node reconnects,
// counts it, and a message published a second later still arrives.
func TestListenerTerminated(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	a, b := newNode(t, db, nodeOptions{}), newNode(t, db, nodeOptions{})
	ensureTopic(t, a.store, "app", "t")
	s := subscribe(t, b.bc, "app", "t")

	before := metric(t, b.bc, "herald_pg_listener_reconnects_total")
	pgtest.Exec(t, db, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'herald-listener' AND datname = current_database()")
	time.Sleep(time.Second)
	_, err := a.publish(t.Context(), "app", "t", []byte(`"after the cut"`))
	require.NoError(t, err)
	s.Until(t, clustertest.CatchUp, atLeast(1))
	require.Equal(t, []uint64{1}, s.IDs())
	require.Eventually(t, func() bool { return metric(t, b.bc, "herald_pg_listener_reconnects_total") > before }, clustertest.CatchUp, 50*time.Millisecond)
}

// TestCatchUpAfterOutage keeps a node's listener cut off while 50 messages
// are published elsewhere: once it is back, it delivers all 50, once each,
// in order, then carries on live.
func TestCatchUpAfterOutage(t *testing.T) {
	t.Parallel()
	a, b, proxy := proxiedPair(t, "t")
	s := subscribe(t, b.bc, "app", "t")

	_, err := a.publish(t.Context(), "app", "t", []byte(`0`))
	require.NoError(t, err)
	s.Until(t, clustertest.CatchUp, atLeast(1))

	proxy.Refuse(true)
	proxy.Cut()
	require.Eventually(t, func() bool { return b.bc.Ready() != nil }, clustertest.CatchUp, 20*time.Millisecond, "the node should know it is not listening")
	for i := range 50 {
		_, err := a.publish(t.Context(), "app", "t", fmt.Appendf(nil, "%d", i+1))
		require.NoError(t, err)
	}
	time.Sleep(500 * time.Millisecond)
	proxy.Refuse(false)

	s.Until(t, clustertest.CatchUp, atLeast(51))
	_, err = a.publish(t.Context(), "app", "t", []byte(`"live"`))
	require.NoError(t, err)
	s.Until(t, clustertest.CatchUp, atLeast(52))
	require.Equal(t, storetest.Seq(1, 52), s.IDs())
	require.Eventually(t, func() bool { return b.bc.Ready() == nil }, clustertest.CatchUp, 20*time.Millisecond)
}

// TestDeafListener freezes the listener's connection without closing it:
// the node notices the missing echo, reports not ready, reopens the
// listener and is ready again, and messages flow.
func TestDeafListener(t *testing.T) {
	t.Parallel()
	a, b, proxy := proxiedPair(t, "t")
	s := subscribe(t, b.bc, "app", "t")
	require.NoError(t, b.bc.Ready())

	before := metric(t, b.bc, "herald_pg_listener_reconnects_total")
	proxy.FreezeListeners()
	require.Eventually(t, func() bool { return b.bc.Ready() != nil }, clustertest.CatchUp, 20*time.Millisecond, "a deaf listener must make the node not ready")
	_, err := a.publish(t.Context(), "app", "t", []byte(`"while deaf"`))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return b.bc.Ready() == nil }, clustertest.CatchUp, 20*time.Millisecond, "the node must reopen its listener")
	require.Greater(t, metric(t, b.bc, "herald_pg_listener_reconnects_total"), before)
	s.Until(t, clustertest.CatchUp, atLeast(1))
	require.Equal(t, []uint64{1}, s.IDs())
}

// TestBarrierAcrossReconnect: a barrier marker sent while the listener is
// cut off is lost with its connection (it is in no history to catch up
// from), so the harness's barrier sends it again once the node has reopened
// its listener, and returns. A barrier that waited for the first marker
// alone hung until its deadline whenever a busy machine made a listener go
// deaf at the wrong moment, and failed a conformance case.
func TestBarrierAcrossReconnect(t *testing.T) {
	t.Parallel()
	a, b, proxy := proxiedPair(t, "t")
	before := metric(t, b.bc, "herald_pg_listener_reconnects_total")
	proxy.FreezeListeners() // the first marker reaches no one
	barrier(t, a, b)(t.Context())
	require.False(t, t.Failed(), "the barrier must come round")
	require.Greater(t, metric(t, b.bc, "herald_pg_listener_reconnects_total"), before,
		"the listener was reopened, so the first marker was lost")
}

// TestTransactionPoolerRefused: through a proxy that keeps notifications
// from the client, as a transaction-pooling PgBouncer does to LISTEN, Open
// fails and says why.
func TestTransactionPoolerRefused(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	proxy := pgtest.NewProxy(t, db)
	proxy.DropNotifications(true)
	notifier, err := pgnotify.NewNotifier("", 0)
	require.NoError(t, err)
	st, err := postgres.Open(t.Context(), db, postgres.Options{MaxConns: 2, BeforeCommit: notifier.NotifyTx})
	require.NoError(t, err)
	defer st.Close()
	tr, err := pgnotify.New(pgnotify.Config{
		DatabaseURL: proxy.URL(db), Pool: st.Pool(), Notifier: notifier,
		StartTimeout: time.Second,
	})
	require.NoError(t, err)
	_, err = cluster.Open(t.Context(), cluster.Config{Transport: tr, History: st})
	require.ErrorContains(t, err, "transaction-pooling proxy")
}

// TestSlowSubscriberDoesNotFillQueue: a subscriber that never reads must
// not make the node stop draining Postgres's notification queue. The
// contrast is a bare connection that LISTENs and never consumes, which does
// hold the queue (proving the measure can see it).
func TestSlowSubscriberDoesNotFillQueue(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	a := newNode(t, db, nodeOptions{bufferSize: 16})
	b := newNode(t, db, nodeOptions{bufferSize: 16, check: 100 * time.Millisecond})
	ensureTopic(t, a.store, "app", "t")
	_ = subscribe(t, b.bc, "app", "t") // never reads
	reader := subscribe(t, b.bc, "app", "t")

	usage := func() float64 {
		c, err := pgx.Connect(t.Context(), db)
		require.NoError(t, err)
		defer c.Close(context.Background())
		var u float64
		require.NoError(t, c.QueryRow(t.Context(), "SELECT pg_notification_queue_usage()").Scan(&u))
		return u
	}
	body := []byte(`"` + strings.Repeat("x", 5800) + `"`)
	// One publish at a time, so that each notification carries its 5.8 KB
	// message inline (concurrent publishes share notifications, which then
	// point to history instead and barely use the queue).
	publishMany := func(n int) {
		for range n {
			_, err := a.publish(t.Context(), "app", "t", body)
			require.NoError(t, err)
		}
	}
	publishMany(1000)
	reader.Until(t, clustertest.CatchUp, func(evs []*broadcast.Event) bool { return len(evs) > 0 && evs[len(evs)-1].ID == 1000 })
	require.Eventually(t, func() bool { return usage() == 0 }, clustertest.CatchUp, 50*time.Millisecond,
		"the queue must drain although a subscriber never reads")
	require.Eventually(t, func() bool { return metric(t, b.bc, "herald_pg_notification_queue_usage") == 0 }, clustertest.CatchUp, 50*time.Millisecond)

	// The contrast: a listener that does not consume holds the queue. It
	// stays in a transaction, where Postgres hands it nothing, rather than
	// leaving its socket unread: a backend blocked writing to a client
	// that does not read answers no ProcSignalBarrier, and every DROP
	// DATABASE on the server (every other test's cleanup) waits for those
	// until that client goes. It also took thousands of notifications to
	// fill the socket buffers first; one page of the queue is enough here.
	stuck, err := pgx.Connect(t.Context(), db)
	require.NoError(t, err)
	defer stuck.Close(context.Background())
	_, err = stuck.Exec(t.Context(), "LISTEN herald")
	require.NoError(t, err)
	_, err = stuck.Exec(t.Context(), "BEGIN")
	require.NoError(t, err)
	publishMany(20) // a page each: a 5.8 KB notification leaves no room for another
	require.Positive(t, usage(), "a listener that never consumes should hold the queue")
}
