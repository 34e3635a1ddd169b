package pgnotify_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/broadcast"
	"github.com/heraldhq/herald/internal/broadcast/cluster"
	"github.com/heraldhq/herald/internal/broadcast/cluster/clustertest"
	"github.com/heraldhq/herald/internal/broadcast/pgnotify"
	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/postgres"
	"github.com/heraldhq/herald/internal/store/storetest"
)

// node is one Herald node's storage: a Postgres store whose publish
// transactions notify, and the broadcaster that listens.
type node struct {
	store *postgres.Store
	bc    *cluster.Broadcaster
	ct    *clustertest.Node
}

type nodeOptions struct {
	// listenURL is where the listener connects, if not the database itself
	// (a fault-injecting proxy).
	listenURL  string
	bufferSize int
	check      time.Duration
	// beforeCommit wraps the notifier's hook (to inject a failure).
	beforeCommit func(next func(context.Context, pgx.Tx, []store.Message) error) func(context.Context, pgx.Tx, []store.Message) error
}

func newNode(t *testing.T, dbURL string, o nodeOptions) *node {
	t.Helper()
	notifier, err := pgnotify.NewNotifier("", 0)
	require.NoError(t, err)
	// The server's hook, or the one that can be wrapped.
	opts := postgres.Options{MaxConns: 4, QueueBeforeCommitFunc: notifier.QueueNotify}
	if o.beforeCommit != nil {
		opts.QueueBeforeCommitFunc, opts.BeforeCommit = nil, o.beforeCommit(notifier.NotifyTx)
	}
	st, err := postgres.Open(t.Context(), dbURL, opts)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	if o.listenURL == "" {
		o.listenURL = dbURL
	}
	check := o.check
	if check == 0 {
		check = 200 * time.Millisecond
	}
	tr, err := pgnotify.New(pgnotify.Config{
		DatabaseURL: o.listenURL, Pool: st.Pool(), Notifier: notifier,
		CheckInterval: check, MaxBackoff: time.Second,
	})
	require.NoError(t, err)
	bc, err := cluster.Open(t.Context(), cluster.Config{
		Transport: tr, History: st, BufferSize: o.bufferSize, MaxBackoff: time.Second,
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, bc.Close()) })
	return &node{store: st, bc: bc, ct: &clustertest.Node{Store: st, BC: bc}}
}

// publish stores a message through n, handing it to n's local subscribers
// as the pubsub service does.
func (n *node) publish(ctx context.Context, app, topic string, body []byte) (store.Message, error) {
	return n.ct.Publish(ctx, app, topic, body)
}

func ensureTopic(t *testing.T, st store.Store, app, topic string) {
	t.Helper()
	clustertest.EnsureTopic(t, st, app, topic)
}

// barrier returns once sub has heard every notification sent before it.
// The marker is not a Herald notification, so the node counts it as
// invalid and ignores it: that count is what the harness waits on.
//
// A marker committed while sub's listener is being reopened (it went deaf
// on a busy machine, say) is never heard: Postgres keeps notifications only
// for sessions that are listening, and the node reads what it missed from
// history, where no marker is. So the marker is sent again after every
// reconnect; one heard on the listener's current connection still means
// that everything sent before it was heard or read from history. The
// reconnect count is read before each marker is sent, so a marker can only
// be lost to a reconnect that the count shows.
func barrier(t *testing.T, pub, sub *node) func(ctx context.Context) {
	return func(ctx context.Context) {
		reconnects := func() float64 { return metric(t, sub.bc, "herald_pg_listener_reconnects_total") }
		heard := func() float64 { return metric(t, sub.bc, "herald_pg_notifications_invalid_total") }
		deadline, first := time.Now().Add(clustertest.CatchUp), reconnects()
		for sent := 1; ; sent++ {
			conn, before := reconnects(), heard()
			_, err := pub.store.Pool().Exec(ctx, "SELECT pg_notify($1, 'harness barrier')", pgnotify.Channel)
			if !assert.NoError(t, err) {
				return
			}
			for heard() <= before {
				if reconnects() != conn {
					break
				}
				if time.Now().After(deadline) {
					assert.Fail(t, "the barrier did not come round",
						"within %v: %d markers sent, the listener reopened %v times meanwhile", clustertest.CatchUp, sent, reconnects()-first)
					return
				}
				time.Sleep(time.Millisecond)
			}
			if heard() > before {
				if sent > 1 {
					// The earlier marker may have been heard after all
					// (sent after the new LISTEN): it is not known here.
					t.Logf("barrier: sent %d markers, the listener having been reopened while one was unheard", sent)
				}
				return
			}
		}
	}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	clustertest.ConformanceModes(t, func(t *testing.T, size int, oneNode bool) (pub, sub *clustertest.Node, bar func(context.Context)) {
		db := pgtest.NewDatabase(t)
		a := newNode(t, db, nodeOptions{bufferSize: size})
		b := a
		if !oneNode {
			b = newNode(t, db, nodeOptions{bufferSize: size})
		}
		return a.ct, b.ct, barrier(t, a, b)
	})
}

var (
	subscribe = clustertest.Subscribe
	atLeast   = clustertest.AtLeast
)

// TestLargeMessagesCrossNodes checks that messages too big for a
// notification's payload (counted in bytes, not characters) arrive whole on
// another node, as do names up to the longest topic Herald allows.
func TestLargeMessagesCrossNodes(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	a, b := newNode(t, db, nodeOptions{}), newNode(t, db, nodeOptions{})
	topic := strings.Repeat("t", 128)
	ensureTopic(t, a.store, "app", topic)
	s := subscribe(t, b.bc, "app", topic)

	big, err := json.Marshal(map[string]string{"blob": strings.Repeat("x", 100_000)})
	require.NoError(t, err)
	accents, err := json.Marshal(strings.Repeat("é", 3600)) // 7,200 bytes in 3,600 characters
	require.NoError(t, err)
	small := []byte(`{"n":1}`)
	// Travels inline: the bytes must survive the notification unchanged
	// (no \u003c for <), as they do history and the SSE frame.
	html := []byte(`{"html":"<a href=\"x\">&amp;</a>"}`)
	bodies := [][]byte{big, accents, small, html}
	for _, body := range bodies {
		_, err := a.publish(t.Context(), "app", topic, body)
		require.NoError(t, err, "publish %d bytes", len(body))
	}
	s.Until(t, clustertest.CatchUp, atLeast(len(bodies)))
	require.Equal(t, []uint64{1, 2, 3, 4}, s.IDs())
	for i, body := range bodies {
		require.Equal(t, string(body), string(s.Got[i].Message), "message %d", i+1)
	}
}

// TestOrderAcrossNodes publishes 1000 messages to one topic from 8
// publishers split over two nodes: subscribers on both see ids 1..1000 in
// order, each once.
func TestOrderAcrossNodes(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	nodes := []*node{newNode(t, db, nodeOptions{bufferSize: 2048}), newNode(t, db, nodeOptions{bufferSize: 2048})}
	ensureTopic(t, nodes[0].store, "app", "orders")
	sinks := []*clustertest.Sink{subscribe(t, nodes[0].bc, "app", "orders"), subscribe(t, nodes[1].bc, "app", "orders")}

	var wg sync.WaitGroup
	for p := range 8 {
		n := nodes[p%2]
		wg.Go(func() {
			for i := range 125 {
				_, err := n.publish(t.Context(), "app", "orders", fmt.Appendf(nil, `{"p":%d,"i":%d}`, p, i))
				assert.NoError(t, err)
			}
		})
	}
	wg.Wait()
	for i, s := range sinks {
		s.Until(t, clustertest.CatchUp, atLeast(1000))
		require.Equal(t, storetest.Seq(1, 1000), s.IDs(), "node %d", i)
	}
}

// TestOwnPublishDeliveredOnce checks that a node delivers its own publish
// once, not again when it hears its own notification.
func TestOwnPublishDeliveredOnce(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	a := newNode(t, db, nodeOptions{})
	ensureTopic(t, a.store, "app", "once")
	s := subscribe(t, a.bc, "app", "once")
	for i := range 20 {
		_, err := a.publish(t.Context(), "app", "once", fmt.Appendf(nil, "%d", i))
		require.NoError(t, err)
	}
	s.Until(t, clustertest.CatchUp, atLeast(20))
	// Once a marker sent after the publishes has come back, the node has
	// heard (and handled, in order) its own notifications of all 20: no
	// wall-clock wait, which a busy machine could outlast.
	barrier(t, a, a)(t.Context())
	s.Until(t, clustertest.CatchUp, atLeast(20)) // takes what is there now
	require.Equal(t, storetest.Seq(1, 20), s.IDs())
	require.NoError(t, s.Err)
}

// TestSignalIffCommitted checks the notification is part of the publish
// transaction: a message whose node does nothing after COMMIT (as if killed
// there) still reaches another node, and a transaction that fails after its
// NOTIFY sends nothing.
func TestSignalIffCommitted(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	var failNext sync.Mutex
	fail := false
	a := newNode(t, db, nodeOptions{beforeCommit: func(next func(context.Context, pgx.Tx, []store.Message) error) func(context.Context, pgx.Tx, []store.Message) error {
		return func(ctx context.Context, tx pgx.Tx, msgs []store.Message) error {
			if err := next(ctx, tx, msgs); err != nil {
				return err
			}
			failNext.Lock()
			defer failNext.Unlock()
			if fail {
				fail = false
				return errors.New("injected failure after NOTIFY")
			}
			return nil
		}
	}})
	b := newNode(t, db, nodeOptions{})
	ensureTopic(t, a.store, "app", "atomic")
	s := subscribe(t, b.bc, "app", "atomic")

	// The publishing node never hands the message on: only the
	// notification that committed with it can bring it to b.
	_, err := a.store.Publish(t.Context(), store.PublishRequest{AppID: "app", Topic: "atomic", Body: []byte(`"committed"`)})
	require.NoError(t, err)
	s.Until(t, clustertest.CatchUp, atLeast(1))

	failNext.Lock()
	fail = true
	failNext.Unlock()
	_, err = a.publish(t.Context(), "app", "atomic", []byte(`"rolled back"`))
	require.ErrorContains(t, err, "injected failure")

	_, err = a.publish(t.Context(), "app", "atomic", []byte(`"after"`))
	require.NoError(t, err)
	s.Until(t, clustertest.CatchUp, atLeast(2))
	require.Equal(t, []uint64{1, 2}, s.IDs())
	require.JSONEq(t, `"committed"`, string(s.Got[0].Message))
	require.JSONEq(t, `"after"`, string(s.Got[1].Message))
}

// TestDropTopicAcrossNodes checks that deleting a topic on one node ends
// its subscriptions on the others.
func TestDropTopicAcrossNodes(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	a, b := newNode(t, db, nodeOptions{}), newNode(t, db, nodeOptions{})
	ensureTopic(t, a.store, "app", "doomed")
	s := subscribe(t, b.bc, "app", "doomed")
	require.NoError(t, a.store.DeleteTopic(t.Context(), "app", "doomed"))
	a.bc.DropTopic(t.Context(), "app", "doomed")
	s.Until(t, clustertest.CatchUp, func([]*broadcast.Event) bool { return false })
	require.ErrorIs(t, s.Err, broadcast.ErrTopicDropped)
}

// TestLateDropSparesRecreatedTopic: a deletion heard after the topic was
// created again, and subscribed to, does not end the new subscription.
func TestLateDropSparesRecreatedTopic(t *testing.T) {
	t.Parallel()
	a, b, proxy := proxiedPair(t, "phoenix")
	old := subscribe(t, b.bc, "app", "phoenix")

	proxy.FreezeListeners() // b hears the deletion only later
	require.NoError(t, a.store.DeleteTopic(t.Context(), "app", "phoenix"))
	a.bc.DropTopic(t.Context(), "app", "phoenix")
	ensureTopic(t, a.store, "app", "phoenix")
	old.Until(t, clustertest.CatchUp, func([]*broadcast.Event) bool { return false })
	require.ErrorIs(t, old.Err, broadcast.ErrTopicDropped, "the reconnect's catch-up ends the old life's subscription")

	fresh := subscribe(t, b.bc, "app", "phoenix")
	_, err := a.publish(t.Context(), "app", "phoenix", []byte(`"reborn"`))
	require.NoError(t, err)
	fresh.Until(t, clustertest.CatchUp, atLeast(1))
	require.Equal(t, []uint64{1}, fresh.IDs())
	require.NoError(t, fresh.Err)
}

// TestSubscribeUnknownTopic checks the first subscriber of a topic that
// does not exist gets store.ErrNotFound.
func TestSubscribeUnknownTopic(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	a := newNode(t, db, nodeOptions{})
	_, err := a.bc.Subscribe(t.Context(), "nope", "nope", broadcast.WakeChan(make(chan struct{}, 1)))
	require.ErrorIs(t, err, store.ErrNotFound)
}
