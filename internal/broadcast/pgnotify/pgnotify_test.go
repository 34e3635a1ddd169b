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
	"github.com/heraldhq/herald/internal/broadcast/broadcasttest"
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
	bc    *pgnotify.Broadcaster
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
	hook := notifier.NotifyTx
	if o.beforeCommit != nil {
		hook = o.beforeCommit(hook)
	}
	st, err := postgres.Open(t.Context(), dbURL, postgres.Options{MaxConns: 4, BeforeCommit: hook})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	if o.listenURL == "" {
		o.listenURL = dbURL
	}
	check := o.check
	if check == 0 {
		check = 200 * time.Millisecond
	}
	bc, err := pgnotify.Open(t.Context(), pgnotify.Config{
		DatabaseURL: o.listenURL, Pool: st.Pool(), History: st, Notifier: notifier,
		BufferSize: o.bufferSize, CheckInterval: check, MaxBackoff: time.Second,
	})
	require.NoError(t, err)
	t.Cleanup(func() { bc.Close() })
	return &node{store: st, bc: bc}
}

// publish stores a message through n, handing it to n's local subscribers
// as the pubsub service does.
func (n *node) publish(ctx context.Context, app, topic string, body []byte) (store.Message, error) {
	return n.store.Publish(ctx, store.PublishRequest{
		AppID: app, Topic: topic, Body: body,
		CommittedFunc: func(m store.Message) { n.bc.Publish(ctx, eventOf(m)) },
	})
}

func eventOf(m store.Message) *broadcast.Event {
	return &broadcast.Event{App: m.AppID, Topic: m.Topic, ID: m.ID, Message: m.Body, PublishedAt: m.PublishedAt}
}

// ensureTopic creates the app and topic if they do not exist.
func ensureTopic(t *testing.T, st store.Store, app, topic string) {
	t.Helper()
	ctx := context.Background()
	if _, err := st.GetApp(ctx, app); errors.Is(err, store.ErrNotFound) {
		err = st.CreateApp(ctx, store.App{ID: app, Name: app, CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}, nil)
		if !errors.Is(err, store.ErrConflict) {
			require.NoError(t, err)
		}
	}
	_, _, err := st.CreateTopic(ctx, app, topic)
	require.NoError(t, err)
}

// cluster is the conformance suite's view of two nodes as one broadcaster:
// events are published (and topics dropped) through pub and heard through
// sub. With pub == sub it is one node delivering its own commits.
//
// The suite numbers each topic's events itself, 1, 2, 3, …, and expects a
// dropped topic to start again at 1, as a deleted and recreated topic does.
// So the harness keeps the store in step: DropTopic deletes the topic and
// creates it again in one transaction (so that it never seems missing to a
// concurrent subscriber), and Publish moves the counter forward when
// the suite skips ahead (it publishes #3 to a topic it dropped after #2, as
// if #1 and #2 had gone to the topic's earlier life). The stored id must
// then be the suite's. mu keeps the two from interleaving.
type cluster struct {
	t        *testing.T
	pub, sub *node
	mu       sync.Mutex
	made     sync.Map // topicKey → true once the app and topic exist
}

type topicKey struct{ app, topic string }

func (c *cluster) ensure(app, topic string) {
	if _, ok := c.made.Load(topicKey{app, topic}); !ok {
		ensureTopic(c.t, c.pub.store, app, topic)
		c.made.Store(topicKey{app, topic}, true)
	}
}

func (c *cluster) Subscribe(ctx context.Context, app, topic string, wake chan<- struct{}) (*broadcast.Subscription, error) {
	c.ensure(app, topic)
	return c.sub.bc.Subscribe(ctx, app, topic, wake)
}

func (c *cluster) Publish(ctx context.Context, ev *broadcast.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ensure(ev.App, ev.Topic)
	_, err := c.pub.store.Pool().Exec(ctx,
		"UPDATE herald.topics SET last_id = $3 WHERE app_id = $1 AND name = $2 AND last_id < $3",
		ev.App, ev.Topic, int64(ev.ID)-1)
	assert.NoError(c.t, err)
	m, err := c.pub.publish(ctx, ev.App, ev.Topic, ev.Message)
	if assert.NoError(c.t, err) {
		assert.Equal(c.t, ev.ID, m.ID, "the store numbered %s/%s differently from the suite", ev.App, ev.Topic)
	}
}

func (c *cluster) DropTopic(ctx context.Context, app, topic string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	tx, err := c.pub.store.Pool().Begin(ctx)
	if !assert.NoError(c.t, err) {
		return
	}
	defer func() { _ = tx.Rollback(ctx) }()
	tag, err := tx.Exec(ctx, "DELETE FROM herald.topics WHERE app_id = $1 AND name = $2", app, topic)
	assert.NoError(c.t, err)
	if tag.RowsAffected() == 1 { // a topic never made (nor its app) stays unmade
		_, err = tx.Exec(ctx, "INSERT INTO herald.topics (app_id, name, created_at) VALUES ($1, $2, clock_timestamp())", app, topic)
		assert.NoError(c.t, err)
	}
	assert.NoError(c.t, tx.Commit(ctx))
	c.pub.bc.DropTopic(ctx, app, topic)
	c.barrier(ctx)
}

// barrier returns once the subscribing node has heard every notification
// sent before it. The suite subscribes right after a drop and expects only
// later events; a notification of the dropped life still in flight would
// otherwise reach the new subscriber (in production a recreated topic
// starts again at id 1, and the sequencer drops such late ids). The marker
// is not a Herald notification, so the node counts it as invalid and
// ignores it: that count is what the harness waits on.
func (c *cluster) barrier(ctx context.Context) {
	before := metric(c.t, c.sub.bc, "herald_pg_notifications_invalid_total")
	_, err := c.pub.store.Pool().Exec(ctx, "SELECT pg_notify($1, 'harness barrier')", pgnotify.Channel)
	assert.NoError(c.t, err)
	assert.Eventually(c.t, func() bool {
		return metric(c.t, c.sub.bc, "herald_pg_notifications_invalid_total") > before
	}, 10*time.Second, time.Millisecond)
}

func TestConformance(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"across nodes", "one node"} {
		for _, size := range []int{16, 128} {
			t.Run(fmt.Sprintf("%s/buffer %d", mode, size), func(t *testing.T) {
				t.Parallel()
				db := pgtest.NewDatabase(t)
				c := &cluster{t: t}
				c.pub = newNode(t, db, nodeOptions{bufferSize: size})
				c.sub = c.pub
				if mode == "across nodes" {
					c.sub = newNode(t, db, nodeOptions{bufferSize: size})
				}
				broadcasttest.Run(t, func(*testing.T) broadcast.Broadcaster { return c }, broadcasttest.Options{BufferSize: size})
			})
		}
	}
}

// sink collects what one subscription receives.
type sink struct {
	sub    *broadcast.Subscription
	wake   chan struct{}
	got    []*broadcast.Event
	missed uint64
	err    error
}

func subscribe(t *testing.T, bc broadcast.Broadcaster, app, topic string) *sink {
	t.Helper()
	wake := make(chan struct{}, 1)
	sub, err := bc.Subscribe(t.Context(), app, topic, wake)
	require.NoError(t, err)
	return &sink{sub: sub, wake: wake}
}

// until receives until cond holds or the timeout passes.
func (s *sink) until(t *testing.T, timeout time.Duration, cond func([]*broadcast.Event) bool) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		var missed uint64
		s.got, missed, s.err = s.sub.Receive(s.got)
		s.missed += missed
		if cond(s.got) || s.err != nil {
			return
		}
		select {
		case <-s.wake:
		case <-deadline:
			require.FailNow(t, "timed out", "got %d events, last %s", len(s.got), lastID(s.got))
		}
	}
}

func (s *sink) ids() []uint64 {
	out := make([]uint64, len(s.got))
	for i, ev := range s.got {
		out[i] = ev.ID
	}
	return out
}

func lastID(evs []*broadcast.Event) string {
	if len(evs) == 0 {
		return "none"
	}
	return fmt.Sprint(evs[len(evs)-1].ID)
}

func atLeast(n int) func([]*broadcast.Event) bool {
	return func(evs []*broadcast.Event) bool { return len(evs) >= n }
}

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
	s.until(t, 10*time.Second, atLeast(len(bodies)))
	require.Equal(t, []uint64{1, 2, 3, 4}, s.ids())
	for i, body := range bodies {
		require.Equal(t, string(body), string(s.got[i].Message), "message %d", i+1)
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
	sinks := []*sink{subscribe(t, nodes[0].bc, "app", "orders"), subscribe(t, nodes[1].bc, "app", "orders")}

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
		s.until(t, 20*time.Second, atLeast(1000))
		require.Equal(t, storetest.Seq(1, 1000), s.ids(), "node %d", i)
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
	s.until(t, 5*time.Second, atLeast(20))
	// Give the notifications time to come back, then check nothing more came.
	time.Sleep(time.Second)
	s.until(t, time.Second, atLeast(20))
	require.Equal(t, storetest.Seq(1, 20), s.ids())
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
	s.until(t, 10*time.Second, atLeast(1))

	failNext.Lock()
	fail = true
	failNext.Unlock()
	_, err = a.publish(t.Context(), "app", "atomic", []byte(`"rolled back"`))
	require.ErrorContains(t, err, "injected failure")

	_, err = a.publish(t.Context(), "app", "atomic", []byte(`"after"`))
	require.NoError(t, err)
	s.until(t, 10*time.Second, atLeast(2))
	require.Equal(t, []uint64{1, 2}, s.ids())
	require.JSONEq(t, `"committed"`, string(s.got[0].Message))
	require.JSONEq(t, `"after"`, string(s.got[1].Message))
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
	s.until(t, 10*time.Second, func([]*broadcast.Event) bool { return false })
	require.ErrorIs(t, s.err, broadcast.ErrTopicDropped)
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
	old.until(t, 15*time.Second, func([]*broadcast.Event) bool { return false })
	require.ErrorIs(t, old.err, broadcast.ErrTopicDropped, "the reconnect's catch-up ends the old life's subscription")

	fresh := subscribe(t, b.bc, "app", "phoenix")
	_, err := a.publish(t.Context(), "app", "phoenix", []byte(`"reborn"`))
	require.NoError(t, err)
	fresh.until(t, 10*time.Second, atLeast(1))
	require.Equal(t, []uint64{1}, fresh.ids())
	require.NoError(t, fresh.err)
}

// TestSubscribeUnknownTopic checks the first subscriber of a topic that
// does not exist gets store.ErrNotFound.
func TestSubscribeUnknownTopic(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	a := newNode(t, db, nodeOptions{})
	_, err := a.bc.Subscribe(t.Context(), "nope", "nope", make(chan struct{}, 1))
	require.ErrorIs(t, err, store.ErrNotFound)
}
