package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/heraldtest"
	"github.com/heraldhq/herald/internal/natstest"
	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/internal/server"
)

// transports are the cluster transports every cluster test runs over: by
// name, the --broadcast-url that picks it (empty: LISTEN/NOTIFY).
func transports(t *testing.T) map[string]string {
	return map[string]string{"notify": "", "nats": natstest.URL(t)}
}

// onEveryTransport runs fn, as a parallel subtest per transport of cluster
// notices, on a fresh cluster of n nodes.
func onEveryTransport(t *testing.T, n int, fn func(t *testing.T, nodes []*heraldtest.Server)) {
	t.Helper()
	for name, url := range transports(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, startCluster(t, n, url))
		})
	}
}

// startCluster runs n nodes on one fresh Postgres database, their notices
// carried by the transport at broadcastURL.
func startCluster(t *testing.T, n int, broadcastURL string) []*heraldtest.Server {
	t.Helper()
	db := pgtest.NewDatabase(t)
	nodes := make([]*heraldtest.Server, n)
	for i := range nodes {
		cfg := heraldtest.Config(t)
		cfg.DatabaseURL = db
		cfg.BroadcastURL = broadcastURL
		cfg.MaxMessageBytes = 256 << 10
		cfg.BufferSize = 4096 // the order test reads bursts of 1000
		nodes[i] = heraldtest.Start(t, cfg)
	}
	return nodes
}

// follow reads s in the background (a Stream connects on its first Next)
// and hands its events over a channel, closed when the stream ends.
func follow(t *testing.T, s *client.Stream) <-chan client.Event {
	t.Helper()
	ch := make(chan client.Event, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ch)
		for {
			ev, err := s.Next()
			if err != nil {
				return
			}
			ch <- ev
		}
	}()
	t.Cleanup(func() { <-done })
	return ch
}

// next takes the next event within a deadline.
func next(t *testing.T, ch <-chan client.Event) client.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		require.True(t, ok, "the stream ended")
		return ev
	case <-time.After(15 * time.Second):
		require.FailNow(t, "no event within 15s")
	}
	return client.Event{}
}

// TestClusterActsAsOneServer: three nodes on one database serve the same
// apps, keys and topics, and a message published on any node, however
// large, reaches subscribers on every node.
func TestClusterActsAsOneServer(t *testing.T) {
	t.Parallel()
	onEveryTransport(t, 3, clusterActsAsOneServer)
}

func clusterActsAsOneServer(t *testing.T, nodes []*heraldtest.Server) {
	t.Helper()
	long := strings.Repeat("t", 128)
	app := nodes[0].NewApp(t, "orders", long)

	for i, n := range nodes {
		c := client.New(n.URL, app.FullKey)
		topics, err := c.ListTopics(t.Context(), app.ID)
		require.NoError(t, err, "node %d", i)
		require.Len(t, topics, 2, "node %d", i)
		apps, err := n.Admin.ListApps(t.Context())
		require.NoError(t, err, "node %d: the cluster's admin token", i)
		require.Len(t, apps, 1)
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var streams []<-chan client.Event
	for _, n := range nodes {
		s := client.New(n.URL, app.SubscribeKey).Stream(ctx, app.ID, []string{"orders", long}, client.StreamOptions{})
		streams = append(streams, follow(t, s))
	}
	for _, n := range nodes {
		require.Eventually(t, func() bool { return subscribers(t, n, app, "orders") == 1 }, 10*time.Second, 20*time.Millisecond)
	}

	big, _ := json.Marshal(map[string]string{"blob": strings.Repeat("x", 100_000)})
	accents, _ := json.Marshal(strings.Repeat("é", 3600))
	published := []struct {
		node  int
		topic string
		body  []byte
	}{
		{0, "orders", []byte(`{"n":1}`)},
		{1, "orders", big},
		{2, long, accents},
		{1, long, []byte(`"line\nbreak \u2028"`)},
	}
	for _, p := range published {
		_, err := client.New(nodes[p.node].URL, app.FullKey).Publish(t.Context(), app.ID, p.topic, p.body)
		require.NoError(t, err)
	}
	// Order holds within a topic; across topics each node may interleave
	// them differently (a large message is read back from history).
	want := map[string][]string{}
	for _, p := range published {
		want[p.topic] = append(want[p.topic], string(p.body))
	}
	for i, s := range streams {
		got := map[string][]string{}
		for j := range published {
			ev := next(t, s)
			require.Equal(t, client.EventMessage, ev.Type, "node %d event %d", i, j)
			got[ev.Message.Topic] = append(got[ev.Message.Topic], string(ev.Message.Message))
		}
		require.Len(t, got, len(want), "node %d", i)
		for topic, bodies := range want {
			require.Len(t, got[topic], len(bodies), "node %d topic %.10s…", i, topic)
			for j := range bodies {
				require.JSONEq(t, bodies[j], got[topic][j], "node %d topic %.10s… message %d", i, topic, j)
			}
		}
	}

	for _, n := range nodes {
		resp, err := http.Get(n.URL + "/readyz")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		m := metricsText(t, n)
		if strings.Contains(m, "herald_nats_up") {
			require.Contains(t, m, "herald_nats_up 1")
			require.NotContains(t, m, "herald_pg_listener_up", "one transport only")
		} else {
			require.Contains(t, m, "herald_pg_listener_up 1")
			require.Contains(t, m, "herald_pg_notification_queue_usage ")
		}
	}
}

// TestClusterDeletionEndsStreamsEverywhere: deleting a topic, and an app,
// on one node ends the streams on the others.
func TestClusterDeletionEndsStreamsEverywhere(t *testing.T) {
	t.Parallel()
	onEveryTransport(t, 2, clusterDeletionEndsStreamsEverywhere)
}

func clusterDeletionEndsStreamsEverywhere(t *testing.T, nodes []*heraldtest.Server) {
	t.Helper()
	app := nodes[0].NewApp(t, "a", "b")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	s := follow(t, client.New(nodes[1].URL, app.SubscribeKey).Stream(ctx, app.ID, []string{"a", "b"}, client.StreamOptions{}))
	require.Eventually(t, func() bool { return subscribers(t, nodes[1], app, "a") == 1 }, 10*time.Second, 20*time.Millisecond)

	require.NoError(t, app.Full.DeleteTopic(t.Context(), app.ID, "a"))
	ev := next(t, s)
	require.Equal(t, client.EventTopicDeleted, ev.Type)
	require.Equal(t, "a", ev.Topic)

	require.NoError(t, nodes[0].Admin.DeleteApp(t.Context(), app.ID))
	ev = next(t, s)
	require.Equal(t, client.EventTopicDeleted, ev.Type)
	require.Equal(t, "b", ev.Topic)
}

// TestClusterFailover stops the node a subscriber is on while messages are
// published through the other: the subscriber resumes on the surviving
// node with Last-Event-ID and sees every id once, in order.
func TestClusterFailover(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 2, "")
	app := nodes[0].NewApp(t, "orders")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stream := client.New(nodes[0].URL, app.SubscribeKey).Stream(ctx, app.ID, []string{"orders"},
		client.StreamOptions{RetryDelay: 50 * time.Millisecond, Failover: []string{nodes[1].URL}})
	s := follow(t, stream)
	require.Eventually(t, func() bool { return subscribers(t, nodes[0], app, "orders") == 1 }, 10*time.Second, 20*time.Millisecond)

	const total = 300
	var wg sync.WaitGroup
	wg.Go(func() {
		pub := client.New(nodes[1].URL, app.FullKey)
		for i := range total {
			_, err := pub.Publish(ctx, app.ID, "orders", fmt.Appendf(nil, "%d", i))
			if !assert.NoError(t, err) {
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	})
	var ids []string
	for len(ids) < total {
		if len(ids) == total/3 {
			require.NoError(t, nodes[0].Stop())
		}
		ev := next(t, s)
		require.Equal(t, client.EventMessage, ev.Type, "after %d messages", len(ids))
		ids = append(ids, ev.Message.ID)
	}
	wg.Wait()
	for i, id := range ids {
		require.Equal(t, fmt.Sprint(i+1), id)
	}
	cancel()
	for range s { //nolint:revive // drain until the reader ends, then Connects is safe to read
	}
	require.GreaterOrEqual(t, stream.Connects, 2, "the stream should have moved to the other node")
}

func subscribers(t *testing.T, n *heraldtest.Server, app heraldtest.App, topic string) int {
	t.Helper()
	topics, err := client.New(n.URL, app.FullKey).ListTopics(t.Context(), app.ID)
	if err != nil {
		return -1
	}
	for _, tp := range topics {
		if tp.Name == topic {
			return tp.Subscribers
		}
	}
	return -1
}

func metricsText(t *testing.T, n *heraldtest.Server) string {
	t.Helper()
	resp, err := http.Get(n.URL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// TestClusterDeafListenerNotReady freezes a node's listener connection (and
// only it): /readyz answers 503 while the node cannot hear the others, and
// 200 again once it has reopened its listener.
func TestClusterDeafListenerNotReady(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	proxy := pgtest.NewProxy(t, db)
	cfg := heraldtest.Config(t)
	cfg.DatabaseURL = proxy.URL(db)
	n := heraldtest.Start(t, cfg)
	ready := func() int {
		resp, err := http.Get(n.URL + "/readyz")
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusOK, ready())
	proxy.FreezeListeners()
	require.Eventually(t, func() bool { return ready() == http.StatusServiceUnavailable }, 20*time.Second, 50*time.Millisecond)
	require.Eventually(t, func() bool { return ready() == http.StatusOK }, 30*time.Second, 50*time.Millisecond)
	require.Contains(t, metricsText(t, n), "herald_pg_listener_reconnects_total 1")
}

// TestClusterOrderUnderConcurrentPublishers: 8 publishers split over two
// nodes send 1000 messages to one topic; streams on both nodes see ids 1 to
// 1000, each once, in order.
func TestClusterOrderUnderConcurrentPublishers(t *testing.T) {
	t.Parallel()
	onEveryTransport(t, 2, clusterOrderUnderConcurrentPublishers)
}

func clusterOrderUnderConcurrentPublishers(t *testing.T, nodes []*heraldtest.Server) {
	t.Helper()
	app := nodes[0].NewApp(t, "orders")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var streams []<-chan client.Event
	for _, n := range nodes {
		streams = append(streams, follow(t, client.New(n.URL, app.SubscribeKey).Stream(ctx, app.ID, []string{"orders"}, client.StreamOptions{})))
	}
	for _, n := range nodes {
		require.Eventually(t, func() bool { return subscribers(t, n, app, "orders") == 1 }, 10*time.Second, 20*time.Millisecond)
	}
	var wg sync.WaitGroup
	for p := range 8 {
		pub := client.New(nodes[p%2].URL, app.FullKey)
		wg.Go(func() {
			for i := range 125 {
				_, err := pub.Publish(ctx, app.ID, "orders", fmt.Appendf(nil, `{"p":%d,"i":%d}`, p, i))
				assert.NoError(t, err)
			}
		})
	}
	wg.Wait()
	for i, s := range streams {
		for want := 1; want <= 1000; want++ {
			ev := next(t, s)
			require.Equal(t, client.EventMessage, ev.Type, "node %d", i)
			require.Equal(t, fmt.Sprint(want), ev.Message.ID, "node %d", i)
		}
	}
}

// The README's --database-url also takes libpq's key=value form; a node
// started with one stores in Postgres like one given a URL.
func TestDatabaseURLInKeyValueForm(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	cc, err := pgconn.ParseConfig(db)
	require.NoError(t, err)
	cfg := heraldtest.Config(t)
	cfg.DatabaseURL = fmt.Sprintf("host=%s port=%d dbname=%s user=%s", cc.Host, cc.Port, cc.Database, cc.User)
	if cc.Password != "" {
		cfg.DatabaseURL += " password=" + cc.Password
	}
	srv := heraldtest.Start(t, cfg)
	app := srv.NewApp(t, "t")
	_, err = app.Full.Publish(t.Context(), app.ID, "t", []byte(`"kv"`))
	require.NoError(t, err)
	var n int
	conn, err := pgx.Connect(t.Context(), db)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT count(*) FROM herald.messages").Scan(&n))
	require.Equal(t, 1, n, "the message is in Postgres")
}

// TestClusterNATSDownNotReady: a node whose NATS server goes away answers
// /readyz 503 until it is back, counts the reconnect, and delivers what the
// other node published meanwhile.
func TestClusterNATSDownNotReady(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	nodes := startCluster(t, 2, srv.URL())
	app := nodes[0].NewApp(t, "orders")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	s := follow(t, client.New(nodes[1].URL, app.SubscribeKey).Stream(ctx, app.ID, []string{"orders"}, client.StreamOptions{}))
	require.Eventually(t, func() bool { return subscribers(t, nodes[1], app, "orders") == 1 }, 10*time.Second, 20*time.Millisecond)
	ready := func(n *heraldtest.Server) int {
		resp, err := http.Get(n.URL + "/readyz")
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusOK, ready(nodes[1]))

	srv.Stop()
	for _, n := range nodes {
		require.Eventually(t, func() bool { return ready(n) == http.StatusServiceUnavailable }, 20*time.Second, 20*time.Millisecond)
	}
	_, err := app.Full.Publish(t.Context(), app.ID, "orders", []byte(`"while NATS was down"`))
	require.NoError(t, err, "publishing does not wait on NATS")
	srv.Restart()
	for _, n := range nodes {
		require.Eventually(t, func() bool { return ready(n) == http.StatusOK }, 30*time.Second, 20*time.Millisecond)
		require.Contains(t, metricsText(t, n), "herald_nats_reconnects_total 1")
	}
	ev := next(t, s)
	require.Equal(t, client.EventMessage, ev.Type)
	require.JSONEq(t, `"while NATS was down"`, string(ev.Message.Message))
}

// TestClusterTenantsApartOnTheWire: two apps with a topic of the same name,
// published on one node and followed on the other: each app's stream gets
// its own messages only.
func TestClusterTenantsApartOnTheWire(t *testing.T) {
	t.Parallel()
	onEveryTransport(t, 2, func(t *testing.T, nodes []*heraldtest.Server) {
		apps := []heraldtest.App{nodes[0].NewApp(t, "same.name"), nodes[0].NewApp(t, "same.name")}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var streams []<-chan client.Event
		for _, app := range apps {
			streams = append(streams, follow(t, client.New(nodes[1].URL, app.SubscribeKey).Stream(ctx, app.ID, []string{"same.name"}, client.StreamOptions{})))
			require.Eventually(t, func() bool { return subscribers(t, nodes[1], app, "same.name") == 1 }, 10*time.Second, 20*time.Millisecond)
		}
		for i, app := range apps {
			for j := range 3 {
				_, err := client.New(nodes[0].URL, app.FullKey).Publish(t.Context(), app.ID, "same.name", fmt.Appendf(nil, `{"app":%d,"n":%d}`, i, j))
				require.NoError(t, err)
			}
		}
		for i, s := range streams {
			for j := range 3 {
				ev := next(t, s)
				require.Equal(t, client.EventMessage, ev.Type)
				require.JSONEq(t, fmt.Sprintf(`{"app":%d,"n":%d}`, i, j), string(ev.Message.Message), "app %d", i)
			}
			select {
			case ev := <-s:
				require.Failf(t, "an extra event", "app %d got %+v", i, ev)
			default:
			}
		}
	})
}

// TestClusterNATSUnreachableFailsAtStart: a --broadcast-url where no NATS
// answers stops the node at start, with an error naming the URL.
func TestClusterNATSUnreachableFailsAtStart(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	url := srv.URL()
	srv.Stop()
	cfg := heraldtest.Config(t)
	cfg.DatabaseURL = pgtest.NewDatabase(t)
	cfg.BroadcastURL = url
	_, err := server.New(t.Context(), cfg, slog.New(slog.DiscardHandler))
	require.ErrorContains(t, err, url)
	require.ErrorContains(t, err, "--broadcast-url")
}
