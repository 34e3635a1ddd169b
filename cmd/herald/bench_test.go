package main

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/heraldtest"
	"github.com/heraldhq/herald/internal/loadtest"
	"github.com/heraldhq/herald/internal/pgtest"
)

func TestBenchFlags(t *testing.T) {
	t.Parallel()
	getenv := func(string) string { return "" }
	for _, args := range [][]string{
		{"--topics", "0"},
		{"--publishers", "0"},
		{"--rate", "-1"},
		{"--duration", "0s"},
		{"--idle", "--subscribers", "0"},
		{"extra"},
		{"--nodes", "2"}, // nodes share a database: none given
		{"--nodes", "0"},
		{"--database-url", "mysql://x/y"},
		{"--database-url", "postgres://x/y", "--url", "http://127.0.0.1:1", "--token", "t"},
		{"--nodes", "2", "--database-url", "postgres://x/y", "--publish-node", "2"},
		{"--publish-node", "first"},
		{"--batch", "0"},
		{"--batch", "1001"},
		{"--batch", "10", "--nodes", "2", "--database-url", "postgres://x/y", "--publish-node", "all"},
	} {
		var stderr bytes.Buffer
		_, _, err := parseBenchFlags(args, getenv, &stderr)
		require.ErrorIs(t, err, errUsage, "%v", args)
	}
	c, _, err := parseBenchFlags([]string{"--max-rate", "--rate", "50"}, getenv, &bytes.Buffer{})
	require.NoError(t, err)
	require.Zero(t, c.Rate, "--max-rate wins")
	require.Empty(t, c.URL, "no --url: bench starts its own server")
	require.Equal(t, 1, c.Nodes)
	require.Zero(t, c.PublishNode)
	require.Empty(t, c.DatabaseURL, "HERALD_DATABASE_URL is not read")

	c, _, err = parseBenchFlags([]string{"--nodes", "3", "--database-url", "postgresql://h/db", "--publish-node", "all"}, getenv, &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, 3, c.Nodes)
	require.Equal(t, loadtest.PublishAll, c.PublishNode)
	require.Equal(t, "postgresql://h/db", c.DatabaseURL)
	c, _, err = parseBenchFlags([]string{"--nodes", "3", "--database-url", "postgres://h/db", "--publish-node", "2"}, getenv, &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, 2, c.PublishNode)
	var stderr bytes.Buffer
	_, _, err = parseBenchFlags([]string{"--nodes", "2"}, func(k string) string {
		return map[string]string{"HERALD_DATABASE_URL": "postgres://h/db"}[k]
	}, &stderr)
	require.ErrorIs(t, err, errUsage, "the variable does not stand in for --database-url")
	require.Contains(t, stderr.String(), "--nodes above 1 needs --database-url")

	// Every invalid flag is named at once, --publish-node last, as before
	// the load tool had a package of its own.
	stderr.Reset()
	_, _, err = parseBenchFlags([]string{"--publish-node", "x", "--size", "0", "--topics", "0"}, getenv, &stderr)
	require.ErrorIs(t, err, errUsage)
	require.Equal(t, "--topics must be at least 1\n--size must be positive\n--publish-node \"x\": want a node number from 0 to 0, or \"all\"\n", stderr.String())

	_, asJSON, err := parseBenchFlags([]string{"--json", "--idle", "--subscribers", "3"}, getenv, &bytes.Buffer{})
	require.NoError(t, err)
	require.True(t, asJSON)

	_, _, err = parseBenchFlags([]string{"--url", "http://127.0.0.1:1", "--data-dir", t.TempDir()}, getenv, &bytes.Buffer{})
	require.ErrorContains(t, err, "no admin token")
	env := map[string]string{"HERALD_ADMIN_TOKEN": "tok"}
	c, _, err = parseBenchFlags([]string{"--url", "http://127.0.0.1:1"}, func(k string) string { return env[k] }, &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, "tok", c.Token)
}

// TestBenchEndToEnd runs `herald bench` against a server in this process and
// checks that every message published to 5 subscribers reached each of them
// once.
func TestBenchEndToEnd(t *testing.T) {
	t.Parallel()
	srv := heraldtest.StartDefault(t)
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	err := run(ctx, []string{
		"bench", "--url", srv.URL, "--token", heraldtest.AdminToken,
		"--subscribers", "5", "--rate", "50", "--duration", "2s", "--warmup", "0", "--json",
	}, func(string) string { return "" }, &stdout, &stderr)
	require.NoError(t, err, stderr.String())

	var rep loadtest.Report
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &rep), stdout.String())
	require.Equal(t, 5, rep.Connect.Subscribers)
	require.NotNil(t, rep.Publish)
	require.NotNil(t, rep.Delivery)
	require.Zero(t, rep.Publish.Errors, rep.Publish.FirstError)
	// No warmup: on a busy machine one publish can take longer than a
	// short window, and a publisher stuck on a warmup request the whole
	// window would leave nothing counted. With the window from the start,
	// the first job is in it whenever its 202 comes.
	//
	// The pacing must never exceed the rate: the window counts the jobs the
	// schedule made due in it (not the ones that happened to go out in it),
	// so 2s at 50/s is at most 100. How close it gets below the rate
	// depends on the machine's load, which a test must not assert.
	require.Positive(t, rep.Publish.Accepted)
	require.LessOrEqual(t, rep.Publish.Accepted, uint64(100), "--rate 50 for 2s counted more than 100 messages")
	d := rep.Delivery
	require.EqualValues(t, rep.Publish.Accepted*5, d.Expected)
	require.Equal(t, d.Expected, d.Delivered)
	require.Zero(t, d.Lost)
	require.Zero(t, d.Duplicates)
	require.Zero(t, d.OutOfOrder)
	require.Zero(t, d.Disconnected, d.FirstDisconnect)
	require.Equal(t, d.Delivered, d.Latency.Samples)
	require.Positive(t, d.Latency.P50)
	require.GreaterOrEqual(t, d.Latency.Max, d.Latency.P99)
	require.Empty(t, rep.Server.MetricsError)
	require.NotNil(t, rep.Server.EventsDelivered)

	require.NotNil(t, rep.Server.CPUPerPublishMicros)

	// --batch N publishes N messages per request through the batch route,
	// each delivered as if published alone.
	stdout.Reset()
	err = run(ctx, []string{
		"bench", "--url", srv.URL, "--token", heraldtest.AdminToken,
		"--subscribers", "3", "--topics", "2", "--rate", "200", "--batch", "10", "--duration", "1s", "--warmup", "0", "--json",
	}, func(string) string { return "" }, &stdout, &stderr)
	require.NoError(t, err, stderr.String())
	rep = loadtest.Report{}
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &rep), stdout.String())
	require.Equal(t, 10, rep.Config.Batch)
	require.Zero(t, rep.Publish.Errors, rep.Publish.FirstError)
	require.Positive(t, rep.Publish.Requests)
	require.Less(t, rep.Publish.Requests, rep.Publish.Accepted, "several messages per request")
	require.Equal(t, rep.Delivery.Expected, rep.Delivery.Delivered)
	require.Zero(t, rep.Delivery.OutOfOrder)
	require.Zero(t, rep.Delivery.Duplicates)

	// The apps bench made are gone again.
	apps, err := srv.Admin.ListApps(t.Context())
	require.NoError(t, err)
	require.Empty(t, apps)
}

// TestBenchCluster runs `herald bench` in cluster mode as a user would: it
// starts two `herald serve` processes (this test binary, see TestMain) on a
// fresh Postgres database, spreads the subscribers and the publishes over
// both, and must see every message on every node, half of them through
// Postgres from the other node.
func TestBenchCluster(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	err := run(ctx, []string{
		"bench", "--database-url", db, "--nodes", "2", "--publish-node", "all",
		"--subscribers", "4", "--rate", "40", "--duration", "1s", "--warmup", "500ms", "--json",
	}, func(string) string { return "" }, &stdout, &stderr)
	require.NoError(t, err, stderr.String())

	var rep loadtest.Report
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &rep), stdout.String())
	require.Equal(t, "postgres", rep.Config.Store)
	require.Len(t, rep.Config.URLs, 2)
	require.NotEqual(t, rep.Config.URLs[0], rep.Config.URLs[1], "a port each")
	require.NotNil(t, rep.Publish)
	require.Zero(t, rep.Publish.Errors, rep.Publish.FirstError)
	require.Positive(t, rep.Publish.Accepted)
	d := rep.Delivery
	require.NotNil(t, d)
	require.EqualValues(t, rep.Publish.Accepted*4, d.Expected)
	require.Equal(t, d.Expected, d.Delivered, "every message to every subscriber")
	require.Zero(t, d.Duplicates)
	require.Zero(t, d.OutOfOrder)
	require.Zero(t, d.Disconnected, d.FirstDisconnect)

	// Two subscribers per node and publishes alternating between the
	// nodes: each message reaches two subscribers on its own node and two
	// across.
	require.NotNil(t, d.LatencyCrossNode)
	require.NotNil(t, d.LatencyPublishingNode)
	require.Equal(t, d.Delivered/2, d.LatencyCrossNode.Samples)
	require.Equal(t, d.Delivered/2, d.LatencyPublishingNode.Samples)
	require.Positive(t, d.LatencyCrossNode.P50)
	require.GreaterOrEqual(t, d.LatencyCrossNode.Max, d.LatencyCrossNode.P99)

	require.Len(t, rep.Nodes, 2)
	for i, n := range rep.Nodes {
		require.Equal(t, i, n.Node)
		require.True(t, n.Publishes)
		require.NotNil(t, n.Delivery)
		require.Equal(t, 2, n.Delivery.Subscribers)
		require.Equal(t, rep.Publish.Accepted*2, n.Delivery.Delivered, "node %d", i)
		s := n.Server
		require.Empty(t, s.MetricsError)
		require.NotNil(t, s.CPUSeconds, "node %d", i)
		require.NotNil(t, s.PGListenerReconnects, "node %d", i)
		require.Zero(t, *s.PGListenerReconnects, "node %d", i)
		require.NotNil(t, s.PGQueueUsage, "node %d", i)
		require.NotNil(t, s.PGNotificationsReceived, "node %d", i)
		require.Positive(t, *s.PGNotificationsReceived, "node %d hears the other's messages", i)
	}
	require.Equal(t, rep.Nodes[0].Server, rep.Server)

	// Bench took its app with it.
	conn, err := pgx.Connect(t.Context(), db)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var apps int
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT count(*) FROM herald.apps").Scan(&apps))
	require.Zero(t, apps)
}
