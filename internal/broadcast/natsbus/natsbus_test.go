package natsbus

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/broadcast"
	"github.com/heraldhq/herald/internal/broadcast/cluster"
	"github.com/heraldhq/herald/internal/broadcast/cluster/clustertest"
	"github.com/heraldhq/herald/internal/natstest"
	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/internal/store/postgres"
	"github.com/heraldhq/herald/internal/store/storetest"
)

// node is one Herald node's storage: a Postgres store, and the cluster
// broadcaster over a NATS transport.
type node struct {
	*clustertest.Node
	bc *cluster.Broadcaster
	tr *Transport
}

type nodeOptions struct {
	natsURL    string
	prefix     string
	bufferSize int
	check      time.Duration
	// wrap, if set, stands between the broadcaster and the transport (to
	// inject a lost notice).
	wrap func(cluster.Transport) cluster.Transport
}

func newNode(t *testing.T, db string, o nodeOptions) *node {
	t.Helper()
	st, err := postgres.Open(t.Context(), db, postgres.Options{MaxConns: 4})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	tr, err := New(Config{URL: o.natsURL, Prefix: o.prefix, PingInterval: 500 * time.Millisecond, ReconnectWait: 100 * time.Millisecond})
	require.NoError(t, err)
	var bt cluster.Transport = tr
	if o.wrap != nil {
		bt = o.wrap(tr)
	}
	check := o.check
	if check == 0 {
		check = time.Second
	}
	bc, err := cluster.Open(t.Context(), cluster.Config{
		Transport: bt, History: st, BufferSize: o.bufferSize, CheckInterval: check, MaxBackoff: time.Second,
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, bc.Close()) })
	return &node{Node: &clustertest.Node{Store: st, BC: bc}, bc: bc, tr: tr}
}

// pair starts n nodes on a fresh database and the shared NATS server, with
// a subject prefix of their own.
func nodes(t *testing.T, n int, o nodeOptions) (string, []*node) {
	t.Helper()
	db := pgtest.NewDatabase(t)
	if o.natsURL == "" {
		o.natsURL = natstest.URL(t)
	}
	o.prefix = natstest.Prefix()
	out := make([]*node, n)
	for i := range out {
		out[i] = newNode(t, db, o)
	}
	return db, out
}

func metric(t require.TestingT, cs []prometheus.Collector, name string) float64 {
	for _, c := range cs {
		ch := make(chan *prometheus.Desc, 1)
		c.Describe(ch)
		if strings.Contains((<-ch).String(), `"`+name+`"`) {
			return testutil.ToFloat64(c)
		}
	}
	require.FailNow(t, "no such metric", name)
	return 0
}

// barrier returns once sub has received every notice pub sent before it:
// pub's queue is flushed to the server, then a marker follows on a subject
// sub watches. The server hands sub's connection what it got in order, and
// sub counts the marker as invalid: that count is what it waits on.
func barrier(t *testing.T, pub, sub *node) func(ctx context.Context) {
	unwatch, err := sub.tr.Watch(t.Context(), "barrier", "b")
	require.NoError(t, err)
	t.Cleanup(unwatch)
	return func(ctx context.Context) {
		if pub == sub {
			return // a node hears nothing of its own
		}
		before := metric(t, sub.tr.Collectors(), "herald_nats_notices_invalid_total")
		assert.NoError(t, pub.tr.Flush(ctx))
		assert.NoError(t, pub.tr.nc.Publish(pub.tr.subject("barrier", "b"), []byte("harness barrier")))
		assert.Eventually(t, func() bool {
			return metric(t, sub.tr.Collectors(), "herald_nats_notices_invalid_total") > before
		}, clustertest.CatchUp, time.Millisecond, "the barrier did not come round")
	}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	clustertest.ConformanceModes(t, func(t *testing.T, size int, oneNode bool) (pub, sub *clustertest.Node, bar func(context.Context)) {
		_, ns := nodes(t, 2, nodeOptions{bufferSize: size})
		a, b := ns[0], ns[1]
		if oneNode {
			b = a
		}
		return a.Node, b.Node, barrier(t, a, b)
	})
}

// TestSubjectEscape: escaped names are one token each, with no wildcard,
// and no two names share an escape.
func TestSubjectEscape(t *testing.T) {
	t.Parallel()
	names := []string{"a", "a.b", "a_2eb", "a_b", "a-b", "*", ">", "a.*", "a.>", "a b", "é", "_", "__", ".", "A", strings.Repeat("._-", 43)}
	seen := map[string]string{}
	for _, n := range names {
		e := escape(n)
		require.NotContains(t, e, ".", n)
		require.NotContains(t, e, "*", n)
		require.NotContains(t, e, ">", n)
		require.NotContains(t, e, " ", n)
		require.NotEmpty(t, e)
		if prev, ok := seen[e]; ok {
			t.Fatalf("%q and %q both escape to %q", prev, n, e)
		}
		seen[e] = n
	}
	tr := &Transport{cfg: Config{Prefix: "p"}}
	require.Equal(t, "p.t.app_5f1.a_2eb-c", tr.subject("app_1", "a.b-c"))
	require.NotEqual(t, tr.subject("a.b", "c"), tr.subject("a", "b.c"))
}

// TestOrderAcrossNodes: 8 publishers over 2 nodes, 1,000 messages to one
// topic: every subscriber on both nodes gets 1..1000 in order, once each.
func TestOrderAcrossNodes(t *testing.T) {
	t.Parallel()
	_, ns := nodes(t, 2, nodeOptions{bufferSize: 2048})
	clustertest.EnsureTopic(t, ns[0].Store, "app", "orders")
	sinks := []*clustertest.Sink{
		clustertest.Subscribe(t, ns[0].bc, "app", "orders"), clustertest.Subscribe(t, ns[0].bc, "app", "orders"),
		clustertest.Subscribe(t, ns[1].bc, "app", "orders"), clustertest.Subscribe(t, ns[1].bc, "app", "orders"),
	}
	var wg sync.WaitGroup
	for p := range 8 {
		wg.Go(func() {
			for i := range 125 {
				_, err := ns[p%2].Publish(t.Context(), "app", "orders", fmt.Appendf(nil, `{"p":%d,"i":%d}`, p, i))
				assert.NoError(t, err)
			}
		})
	}
	wg.Wait()
	for i, s := range sinks {
		s.Until(t, clustertest.CatchUp, clustertest.AtLeast(1000))
		require.Equal(t, storetest.Seq(1, 1000), s.IDs(), "subscriber %d", i)
		require.Zero(t, s.Missed)
	}
}

// TestLargeMessagesAndLongNames: 100 KB messages, 3,600 × é and 128
// characters of every allowed kind in a topic name cross nodes whole; a
// same-named topic of another app gets none of it.
func TestLargeMessagesAndLongNames(t *testing.T) {
	t.Parallel()
	_, ns := nodes(t, 2, nodeOptions{})
	topic := strings.Repeat("a.b_c-D9", 16)
	require.Len(t, topic, 128)
	for _, app := range []string{"app1", "app2"} {
		clustertest.EnsureTopic(t, ns[0].Store, app, topic)
	}
	s1 := clustertest.Subscribe(t, ns[1].bc, "app1", topic)
	s2 := clustertest.Subscribe(t, ns[1].bc, "app2", topic)
	big, err := json.Marshal(map[string]string{"blob": strings.Repeat("x", 100_000)})
	require.NoError(t, err)
	accents, err := json.Marshal(strings.Repeat("é", 3600))
	require.NoError(t, err)
	html := []byte(`{"html":"<a href=\"x\">&amp;</a>"}`)
	bodies := [][]byte{big, accents, html}
	for _, b := range bodies {
		_, err := ns[0].Publish(t.Context(), "app1", topic, b)
		require.NoError(t, err)
	}
	s1.Until(t, clustertest.CatchUp, clustertest.AtLeast(3))
	for i, b := range bodies {
		require.Equal(t, string(b), string(s1.Got[i].Message))
	}
	// app2's topic of the same name: its own message only.
	_, err = ns[0].Publish(t.Context(), "app2", topic, []byte(`"two"`))
	require.NoError(t, err)
	s2.Until(t, clustertest.CatchUp, clustertest.AtLeast(1))
	require.Len(t, s2.Got, 1)
	require.Equal(t, `"two"`, string(s2.Got[0].Message))
	require.Equal(t, "app2", s2.Got[0].App)
}

// lossy drops the notices a test chooses: as if NATS lost them, or the
// publishing node died between its commit and its notice.
type lossy struct {
	cluster.Transport
	drop func(ev *broadcast.Event) bool
}

func (l *lossy) Committed(ev *broadcast.Event) {
	if !l.drop(ev) {
		l.Transport.Committed(ev)
	}
}

// TestLostNoticesFound: a notice dropped mid-stream is filled from history
// by the next message, and a burst whose last notice is lost still ends
// with its last message on the other node, through the periodic check.
func TestLostNoticesFound(t *testing.T) {
	t.Parallel()
	var dropped atomic.Int64
	db, ns := nodes(t, 1, nodeOptions{})
	prefix := ns[0].tr.cfg.Prefix
	pub := newNode(t, db, nodeOptions{natsURL: natstest.URL(t), prefix: prefix, wrap: func(tr cluster.Transport) cluster.Transport {
		return &lossy{Transport: tr, drop: func(ev *broadcast.Event) bool {
			if ev.ID == 3 || ev.ID == 10 { // one mid-stream, and the last of the burst
				dropped.Add(1)
				return true
			}
			return false
		}}
	}})
	sub := ns[0]
	clustertest.EnsureTopic(t, pub.Store, "app", "t")
	s := clustertest.Subscribe(t, sub.bc, "app", "t")
	for i := range 5 {
		_, err := pub.Publish(t.Context(), "app", "t", fmt.Appendf(nil, "%d", i))
		require.NoError(t, err)
	}
	s.Until(t, clustertest.CatchUp, clustertest.AtLeast(5))
	for i := range 5 {
		_, err := pub.Publish(t.Context(), "app", "t", fmt.Appendf(nil, "%d", i))
		require.NoError(t, err)
	}
	start := time.Now()
	s.Until(t, clustertest.CatchUp, clustertest.AtLeast(10))
	t.Logf("the last message, its notice lost, arrived %v after the burst", time.Since(start))
	require.Equal(t, storetest.Seq(1, 10), s.IDs())
	require.EqualValues(t, 2, dropped.Load())
}

// TestDeletionAcrossNodes: a deletion on one node ends the other's
// streams; the recreated topic's subscriber gets only the new life. A
// deletion whose notice is lost is found by the check.
func TestDeletionAcrossNodes(t *testing.T) {
	t.Parallel()
	_, ns := nodes(t, 2, nodeOptions{check: 200 * time.Millisecond})
	a, b := ns[0], ns[1]
	clustertest.EnsureTopic(t, a.Store, "app", "doomed")
	old := clustertest.Subscribe(t, b.bc, "app", "doomed")
	_, err := a.Publish(t.Context(), "app", "doomed", []byte(`"old"`))
	require.NoError(t, err)
	old.Until(t, clustertest.CatchUp, clustertest.AtLeast(1))
	require.NoError(t, a.Store.DeleteTopic(t.Context(), "app", "doomed"))
	a.bc.DropTopic(t.Context(), "app", "doomed")
	old.Until(t, clustertest.CatchUp, clustertest.Never)
	require.ErrorIs(t, old.Err, broadcast.ErrTopicDropped)

	clustertest.EnsureTopic(t, a.Store, "app", "doomed")
	fresh := clustertest.Subscribe(t, b.bc, "app", "doomed")
	_, err = a.Publish(t.Context(), "app", "doomed", []byte(`"new"`))
	require.NoError(t, err)
	fresh.Until(t, clustertest.CatchUp, clustertest.AtLeast(1))
	require.Equal(t, []uint64{1}, fresh.IDs())
	require.Equal(t, `"new"`, string(fresh.Got[0].Message))

	// Deleted with no notice at all (as if the deleting node died first).
	require.NoError(t, a.Store.DeleteTopic(t.Context(), "app", "doomed"))
	fresh.Until(t, clustertest.CatchUp, clustertest.Never)
	require.ErrorIs(t, fresh.Err, broadcast.ErrTopicDropped)
}

// TestNATSRestartedWhilePublishing: NATS goes away and comes back while
// both nodes publish; subscribers on both end with a gap-free sequence,
// each node is not ready while cut off and ready after, and counts the
// reconnect.
func TestNATSRestartedWhilePublishing(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	_, ns := nodes(t, 2, nodeOptions{natsURL: srv.URL(), bufferSize: 2048})
	clustertest.EnsureTopic(t, ns[0].Store, "app", "t")
	sinks := []*clustertest.Sink{clustertest.Subscribe(t, ns[0].bc, "app", "t"), clustertest.Subscribe(t, ns[1].bc, "app", "t")}

	const total = 600
	var published atomic.Int64
	var wg sync.WaitGroup
	for p := range 2 {
		wg.Go(func() {
			for range total / 2 {
				_, err := ns[p].Publish(t.Context(), "app", "t", []byte(`1`))
				assert.NoError(t, err)
				published.Add(1)
				time.Sleep(2 * time.Millisecond) // pace the publishers so the outage falls mid-stream
			}
		})
	}
	require.Eventually(t, func() bool { return published.Load() > total/4 }, clustertest.CatchUp, time.Millisecond)
	srv.Stop()
	for _, n := range ns {
		require.Eventually(t, func() bool { return n.bc.Ready() != nil }, clustertest.CatchUp, time.Millisecond, "a node cut off from NATS is not ready")
	}
	srv.Restart()
	wg.Wait()
	for i, n := range ns {
		require.Eventually(t, func() bool { return n.bc.Ready() == nil }, clustertest.CatchUp, 10*time.Millisecond, "node %d ready again", i)
		require.Positive(t, metric(t, n.bc.Collectors(), "herald_nats_reconnects_total"))
	}
	for i, s := range sinks {
		s.Until(t, clustertest.CatchUp, clustertest.AtLeast(total))
		require.Equal(t, storetest.Seq(1, total), s.IDs(), "subscriber %d", i)
	}
}

// TestStartFailsClearly: a URL where no NATS answers fails at start,
// naming it.
func TestStartFailsClearly(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	url := srv.URL()
	srv.Stop()
	tr, err := New(Config{URL: url, StartTimeout: time.Second})
	require.NoError(t, err)
	err = tr.Start(t.Context(), nil)
	require.ErrorContains(t, err, url)
	require.ErrorIs(t, err, nats.ErrNoServers)
	require.NoError(t, tr.Close())
}

// committedProbe records, for each notice the broadcaster hands the
// transport, whether the store already shows the message committed.
type committedProbe struct {
	cluster.Transport
	st *postgres.Store

	mu  sync.Mutex
	ids []uint64
	ok  []bool
}

func (p *committedProbe) Committed(ev *broadcast.Event) {
	// A read on another connection sees only what committed.
	tp, err := p.st.GetTopic(context.Background(), ev.App, ev.Topic)
	p.mu.Lock()
	p.ids = append(p.ids, ev.ID)
	p.ok = append(p.ok, err == nil && tp.LastID >= ev.ID)
	p.mu.Unlock()
	p.Transport.Committed(ev)
}

// TestNoticeOnlyAfterCommit: the transport is handed a message only once
// it committed, in commit order, and never one whose publish failed.
func TestNoticeOnlyAfterCommit(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	probe := &committedProbe{}
	n := newNode(t, db, nodeOptions{natsURL: natstest.URL(t), prefix: natstest.Prefix(), wrap: func(tr cluster.Transport) cluster.Transport {
		probe.Transport = tr
		return probe
	}})
	probe.st = n.Store
	clustertest.EnsureTopic(t, n.Store, "app", "t")
	_, err := n.Publish(t.Context(), "app", "missing", []byte(`1`))
	require.Error(t, err)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 25 {
				_, err := n.Publish(t.Context(), "app", "t", []byte(`1`))
				assert.NoError(t, err)
			}
		})
	}
	wg.Wait()
	probe.mu.Lock()
	defer probe.mu.Unlock()
	require.Equal(t, storetest.Seq(1, 100), probe.ids, "every committed message once, in commit order, and nothing for the failed publish")
	for i, ok := range probe.ok {
		require.True(t, ok, "message %d was handed to the transport before it committed", i+1)
	}
}

// TestForgedNoticesIgnored: what arrives on a topic's subject reaches its
// subscribers only as a notice of that very app and topic; anything else,
// or a notice whose messages do not decode, delivers nothing that is not
// in the store.
func TestForgedNoticesIgnored(t *testing.T) {
	t.Parallel()
	_, ns := nodes(t, 1, nodeOptions{})
	n := ns[0]
	clustertest.EnsureTopic(t, n.Store, "app1", "t")
	s := clustertest.Subscribe(t, n.bc, "app1", "t")
	nc, err := nats.Connect(natstest.URL(t))
	require.NoError(t, err)
	defer nc.Close()
	subject := n.tr.subject("app1", "t")
	inline := `[{"i":1,"p":0,"b":"\"forged\""}]`
	for _, data := range []string{
		`not json`,
		`{"k":"m","a":"app2","t":"t","l":1,"m":` + inline + `}`, // another app's notice on app1's subject
		`{"k":"m","a":"app1","t":"u","l":1,"m":` + inline + `}`, // another topic's
		`{"k":"x","a":"app1","t":"t"}`,                          // an unknown kind
		`{"k":"m","a":"app1","t":"t","l":1,"m":"garbage"}`,      // messages that do not decode: a pointer
	} {
		require.NoError(t, nc.Publish(subject, []byte(data)))
	}
	require.NoError(t, nc.Flush())
	require.Eventually(t, func() bool {
		return metric(t, n.tr.Collectors(), "herald_nats_notices_invalid_total") == 5
	}, clustertest.CatchUp, time.Millisecond)
	_, err = n.Publish(t.Context(), "app1", "t", []byte(`"real"`))
	require.NoError(t, err)
	s.Until(t, clustertest.CatchUp, clustertest.AtLeast(1))
	require.Len(t, s.Got, 1)
	require.Equal(t, `"real"`, string(s.Got[0].Message))
}
