// Package clustertest runs the broadcast conformance suite (broadcasttest)
// against cluster nodes on one Postgres database, whatever their transport:
// each transport's tests build two nodes and call Conformance.
package clustertest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/broadcast"
	"github.com/heraldhq/herald/internal/broadcast/broadcasttest"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/postgres"
)

// Node is one cluster node as the harness sees it: its store and its
// broadcaster.
type Node struct {
	Store *postgres.Store
	BC    broadcast.Broadcaster
}

// Publish stores a message through n and hands it to n's broadcaster once
// committed, as the pubsub service does.
func (n *Node) Publish(ctx context.Context, app, topic string, body []byte) (store.Message, error) {
	return n.Store.Publish(ctx, store.PublishRequest{
		AppID: app, Topic: topic, Body: body,
		CommittedFunc: func(m store.Message) { n.BC.Publish(ctx, EventOf(m)) },
	})
}

// EventOf is the broadcast event of a stored message.
func EventOf(m store.Message) *broadcast.Event {
	return &broadcast.Event{App: m.AppID, Topic: m.Topic, ID: m.ID, Message: m.Body, PublishedAt: m.PublishedAt}
}

// EnsureTopic creates the app and topic if they do not exist.
func EnsureTopic(tb testing.TB, st store.Store, app, topic string) {
	tb.Helper()
	ctx := context.Background()
	if _, err := st.GetApp(ctx, app); errors.Is(err, store.ErrNotFound) {
		err = st.CreateApp(ctx, store.App{ID: app, Name: app, CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}, nil)
		if !errors.Is(err, store.ErrConflict) {
			require.NoError(tb, err)
		}
	}
	_, _, err := st.CreateTopic(ctx, app, topic)
	require.NoError(tb, err)
}

// CatchUp bounds a wait for a cluster node to hear what another sent (a
// barrier, a delivery). It only bounds a hang: the waits end on a signal,
// and a shared Postgres on a busy machine can take many seconds to pass
// notifications on, so it is generous.
const CatchUp = 60 * time.Second

// PublishTimeout bounds each Publish of the conformance suite through a
// pair. Such a Publish commits a transaction (two statements) before the
// node's broadcaster sees the event, so the deadline bounds database work
// on a busy machine; that the broadcaster's own Publish never waits for a
// subscriber is shown by a subscriber that never reads, for which a waiting
// Publish would never return, and by the in-memory suite's tight bound.
const PublishTimeout = 60 * time.Second

// Conformance runs broadcasttest with events published (and topics
// dropped) through pub and heard through sub; with pub == sub it is one node
// delivering its own commits. barrier must return once sub has heard every
// notice pub sent before it (see pair.DropTopic).
func Conformance(t *testing.T, pub, sub *Node, barrier func(ctx context.Context), bufferSize int) {
	p := &pair{t: t, pub: pub, sub: sub, barrier: barrier}
	broadcasttest.Run(t, func(*testing.T) broadcast.Broadcaster { return p }, broadcasttest.Options{
		BufferSize: bufferSize, Timeout: CatchUp, PublishTimeout: PublishTimeout,
	})
}

// ConformanceModes runs Conformance as parallel subtests: across two nodes
// and on one node (pub == sub), each with subscriber buffers of 16 and 128
// events. nodes starts what a subtest needs (on a database of its own) and
// returns it with its barrier.
func ConformanceModes(t *testing.T, nodes func(t *testing.T, bufferSize int, oneNode bool) (pub, sub *Node, barrier func(context.Context))) {
	for _, mode := range []string{"across nodes", "one node"} {
		for _, size := range []int{16, 128} {
			t.Run(fmt.Sprintf("%s/buffer %d", mode, size), func(t *testing.T) {
				t.Parallel()
				pub, sub, barrier := nodes(t, size, mode == "one node")
				Conformance(t, pub, sub, barrier, size)
			})
		}
	}
}

// pair is the conformance suite's view of two nodes as one broadcaster.
//
// The suite numbers each topic's events itself, 1, 2, 3, …, and expects a
// dropped topic to start again at 1, as a deleted and recreated topic does.
// So the harness keeps the store in step: DropTopic deletes the topic and
// creates it again in one transaction (so that it never seems missing to a
// concurrent subscriber), and Publish moves the counter forward when
// the suite skips ahead (it publishes #3 to a topic it dropped after #2, as
// if #1 and #2 had gone to the topic's earlier life). The stored id must
// then be the suite's. mu keeps the two from interleaving.
//
// The barrier after a drop runs outside mu, under barrierMu: a barrier can
// take long on a busy machine (a listener that is reopened meanwhile), and
// under mu it would stall every other case's Publish with it, which then
// fail as "Publish blocked" although no broadcaster blocked. barrierMu keeps
// barriers one at a time, since they count markers: a barrier that ran
// alongside another could take the other's marker for its own.
type pair struct {
	t         *testing.T
	pub, sub  *Node
	barrier   func(ctx context.Context)
	mu        sync.Mutex
	barrierMu sync.Mutex
	made      sync.Map // topicKey → true once the app and topic exist
}

type topicKey struct{ app, topic string }

func (c *pair) ensure(app, topic string) {
	if _, ok := c.made.Load(topicKey{app, topic}); !ok {
		EnsureTopic(c.t, c.pub.Store, app, topic)
		c.made.Store(topicKey{app, topic}, true)
	}
}

func (c *pair) Subscribe(ctx context.Context, app, topic string, wake func()) (*broadcast.Subscription, error) {
	c.ensure(app, topic)
	return c.sub.BC.Subscribe(ctx, app, topic, wake)
}

func (c *pair) Publish(ctx context.Context, ev *broadcast.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ensure(ev.App, ev.Topic)
	_, err := c.pub.Store.Pool().Exec(ctx,
		"UPDATE herald.topics SET last_id = $3 WHERE app_id = $1 AND name = $2 AND last_id < $3",
		ev.App, ev.Topic, int64(ev.ID)-1)
	assert.NoError(c.t, err)
	m, err := c.pub.Publish(ctx, ev.App, ev.Topic, ev.Message)
	if assert.NoError(c.t, err) {
		assert.Equal(c.t, ev.ID, m.ID, "the store numbered %s/%s differently from the suite", ev.App, ev.Topic)
	}
}

// DropTopic deletes and recreates the topic, then waits at the barrier:
// the suite subscribes right after a drop and expects only later events,
// and a notice of the dropped life still in flight would otherwise reach
// the new subscriber (in production a recreated topic starts again at id
// 1, and the sequencer drops such late ids).
func (c *pair) DropTopic(ctx context.Context, app, topic string) {
	if !c.recreate(ctx, app, topic) {
		return
	}
	c.barrierMu.Lock()
	defer c.barrierMu.Unlock()
	c.barrier(ctx)
}

// recreate deletes the topic and creates it again in one transaction, and
// has pub's broadcaster drop it, under mu. It reports whether the
// transaction committed.
func (c *pair) recreate(ctx context.Context, app, topic string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	tx, err := c.pub.Store.Pool().Begin(ctx)
	if !assert.NoError(c.t, err) {
		return false
	}
	defer func() { _ = tx.Rollback(ctx) }()
	tag, err := tx.Exec(ctx, "DELETE FROM herald.topics WHERE app_id = $1 AND name = $2", app, topic)
	assert.NoError(c.t, err)
	if tag.RowsAffected() == 1 { // a topic never made (nor its app) stays unmade
		_, err = tx.Exec(ctx, "INSERT INTO herald.topics (app_id, name, created_at) VALUES ($1, $2, clock_timestamp())", app, topic)
		assert.NoError(c.t, err)
	}
	if !assert.NoError(c.t, tx.Commit(ctx)) {
		return false
	}
	c.pub.BC.DropTopic(ctx, app, topic)
	return true
}

// Sink collects what one subscription receives.
type Sink struct {
	Sub    *broadcast.Subscription
	Wake   chan struct{}
	Got    []*broadcast.Event
	Missed uint64
	Err    error
}

// Subscribe subscribes to (app, topic) for the rest of the test.
func Subscribe(t *testing.T, bc broadcast.Broadcaster, app, topic string) *Sink {
	t.Helper()
	wake := make(chan struct{}, 1)
	sub, err := bc.Subscribe(t.Context(), app, topic, broadcast.WakeChan(wake))
	require.NoError(t, err)
	return &Sink{Sub: sub, Wake: wake}
}

// Until receives until cond holds, the subscription ends or the timeout
// passes (which fails t).
func (s *Sink) Until(t *testing.T, timeout time.Duration, cond func([]*broadcast.Event) bool) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		var missed uint64
		s.Got, missed, s.Err = s.Sub.Receive(s.Got)
		s.Missed += missed
		if cond(s.Got) || s.Err != nil {
			return
		}
		select {
		case <-s.Wake:
		case <-deadline:
			require.FailNow(t, "timed out", "got %d events, last %s", len(s.Got), lastID(s.Got))
		}
	}
}

// IDs returns the ids received so far.
func (s *Sink) IDs() []uint64 {
	out := make([]uint64, len(s.Got))
	for i, ev := range s.Got {
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

// AtLeast holds once n events have arrived.
func AtLeast(n int) func([]*broadcast.Event) bool {
	return func(evs []*broadcast.Event) bool { return len(evs) >= n }
}

// Never holds never: Until then waits for the subscription's end.
func Never([]*broadcast.Event) bool { return false }
