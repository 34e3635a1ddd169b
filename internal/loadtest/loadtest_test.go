package loadtest

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/heraldtest"
)

// validOptions are the CLI's defaults.
func validOptions() Options {
	return Options{
		Nodes: 1, Subscribers: 100, Topics: 1, Rate: 100, Publishers: 4, Duration: 10 * time.Second,
		Warmup: time.Second, Grace: 5 * time.Second, Size: 128, Batch: 1,
		ConnectTimeout: time.Minute, ConnectConcurrency: 100,
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, validOptions().Validate())
	for _, tc := range []struct {
		change func(*Options)
		want   string
	}{
		{func(o *Options) { o.Subscribers = -1 }, "--subscribers must not be negative"},
		{func(o *Options) { o.Idle, o.Subscribers = true, 0 }, "--idle needs at least one subscriber"},
		{func(o *Options) { o.Topics = 0 }, "--topics must be at least 1"},
		{func(o *Options) { o.Rate = -1 }, "--rate must not be negative"},
		{func(o *Options) { o.Publishers = 0 }, "--publishers must be at least 1"},
		{func(o *Options) { o.Duration = 0 }, "--duration must be positive"},
		{func(o *Options) { o.Warmup = -time.Second }, "--warmup must not be negative"},
		{func(o *Options) { o.Grace = -time.Second }, "--grace must not be negative"},
		{func(o *Options) { o.Size = 0 }, "--size must be positive"},
		{func(o *Options) { o.Batch = 0 }, "--batch must be 1 to 1000"},
		{func(o *Options) { o.Batch = 1001 }, "--batch must be 1 to 1000"},
		{func(o *Options) { o.ConnectTimeout = 0 }, "--connect-timeout must be positive"},
		{func(o *Options) { o.ConnectConcurrency = 0 }, "--connect-concurrency must be at least 1"},
		{func(o *Options) { o.Nodes = 0 }, "--nodes must be at least 1"},
		{func(o *Options) { o.Nodes = 2 }, "--nodes above 1 needs --database-url"},
		{func(o *Options) { o.DatabaseURL = "mysql://x/y" }, "--database-url must be a postgres:// URL"},
		{func(o *Options) { o.BroadcastURL = "nats://x" }, "--broadcast-url needs --database-url"},
		{func(o *Options) { o.URL, o.DatabaseURL = "http://x", "postgres://x/y" }, "not with --url"},
		{func(o *Options) { o.PublishNode = 1 }, "--publish-node must name one of the --nodes"},
		{func(o *Options) { o.PublishNode = -2 }, "--publish-node must name one of the --nodes"},
		{func(o *Options) {
			o.Nodes, o.DatabaseURL, o.PublishNode, o.Batch = 2, "postgresql://x/y", PublishAll, 10
		}, `--batch above 1 needs one --publish-node, not "all"`},
	} {
		o := validOptions()
		tc.change(&o)
		err := o.Validate()
		require.ErrorContains(t, err, tc.want)
		require.NotContains(t, err.Error(), "\n", "%q: one error, one line", tc.want)
	}

	// Every problem is reported at once, in the order of the flags.
	o := validOptions()
	o.Topics, o.Size = 0, 0
	require.EqualError(t, o.Validate(), "--topics must be at least 1\n--size must be positive")

	// A cluster may publish through every node.
	o = validOptions()
	o.Nodes, o.DatabaseURL, o.PublishNode = 3, "postgres://x/y", PublishAll
	require.NoError(t, o.Validate())
}

func TestNewReportConfig(t *testing.T) {
	t.Parallel()
	o := validOptions()
	c := newReportConfig(o)
	require.True(t, c.OwnServer)
	require.Equal(t, "sqlite", c.Store)
	require.Empty(t, c.Broadcast)
	require.Equal(t, "0", c.PublishNode)
	require.Equal(t, 10.0, c.DurationS)
	require.Equal(t, 128, c.Size)

	o.DatabaseURL, o.Nodes, o.PublishNode = "postgres://x/y", 3, PublishAll
	c = newReportConfig(o)
	require.Equal(t, "postgres", c.Store)
	require.Equal(t, "notify", c.Broadcast)
	require.Equal(t, "all", c.PublishNode)
	o.BroadcastURL = "nats://127.0.0.1:4222"
	require.Equal(t, "nats", newReportConfig(o).Broadcast)

	// Idle: nothing is published, so the publish settings read as zero.
	o = validOptions()
	o.Idle = true
	c = newReportConfig(o)
	require.Zero(t, c.Rate)
	require.Zero(t, c.Publishers)
	require.Zero(t, c.Size)
	require.Zero(t, c.Batch)
	require.Empty(t, c.PublishNode)

	// A remote server: its store is not known.
	o = validOptions()
	o.URL = "https://herald.example"
	c = newReportConfig(o)
	require.False(t, c.OwnServer)
	require.Empty(t, c.Store)
	require.Equal(t, "https://herald.example", c.URL)
}

func TestPublishSection(t *testing.T) {
	t.Parallel()
	o := validOptions() // 100/s for 10 s: 1000 due
	res := &publishResult{}
	res.accepted.Store(940)
	res.failed.Store(10)
	res.requests.Store(940)
	res.latency.Record(2 * time.Millisecond)
	p := publishSection(res, o)
	require.InDelta(t, 94.0, p.PerSecond, 1e-9)
	require.False(t, p.BehindSchedule, "950 sent of 1000: within 95%")
	require.Empty(t, p.FirstError)
	require.EqualValues(t, 1, p.Latency.Samples)

	res.accepted.Store(900)
	res.fail(context.DeadlineExceeded, 1)
	p = publishSection(res, o)
	require.True(t, p.BehindSchedule, "911 sent of 1000")
	require.Equal(t, context.DeadlineExceeded.Error(), p.FirstError)

	o.Rate = 0
	require.False(t, publishSection(res, o).BehindSchedule, "no schedule to fall behind")
}

func TestExpectedDeliveries(t *testing.T) {
	t.Parallel()
	accepted := make([]seqSet, 3)
	for seq := range uint64(10) {
		accepted[0].Add(seq + 1)
	}
	accepted[1].Add(1)
	// Subscribers 0..6 read topics 0,1,2,0,1,2,0: 3×10 + 2×1 + 2×0.
	require.EqualValues(t, 32, expectedDeliveries(accepted, 7))
	require.Zero(t, expectedDeliveries(accepted, 0))
}

func TestNodeSections(t *testing.T) {
	t.Parallel()
	servers := []ReportServer{{WindowS: 1}, {WindowS: 2}, {WindowS: 3}}
	bases := []string{"http://a", "http://b", "http://c"}
	byNode := []deliveryTotals{{Subscribers: 1, Expected: 5, Delivered: 5}, {Subscribers: 1, Expected: 5, Delivered: 4, Lost: 1}, {}}
	o := validOptions()
	o.Nodes, o.PublishNode = 3, 1
	nodes := nodeSections(servers, byNode, bases, o)
	require.Len(t, nodes, 3)
	for i, n := range nodes {
		require.Equal(t, i, n.Node)
		require.Equal(t, bases[i], n.URL)
		require.Equal(t, servers[i], n.Server)
		require.Equal(t, i == 1, n.Publishes, "node %d", i)
	}
	require.EqualValues(t, 1, nodes[1].Delivery.Lost)

	o.PublishNode = PublishAll
	for _, n := range nodeSections(servers, byNode, bases, o) {
		require.True(t, n.Publishes)
	}
	o.Idle = true
	for _, n := range nodeSections(servers, nil, bases, o) {
		require.False(t, n.Publishes, "idle: nothing is published")
		require.Nil(t, n.Delivery)
	}
}

func TestRunRefusesBadOptions(t *testing.T) {
	t.Parallel()
	o := validOptions()
	o.Topics = 0
	_, err := Run(t.Context(), o)
	require.ErrorContains(t, err, "--topics must be at least 1")

	_, err = Run(t.Context(), validOptions())
	require.ErrorContains(t, err, "no server", "neither a URL nor a command to start one")
}

// TestRunChildServerFails starts a "server" that dies at once: Run reports
// that, with the last lines it logged, and leaves nothing running.
func TestRunChildServerFails(t *testing.T) {
	t.Parallel()
	o := validOptions()
	o.ServeCommand = []string{"/bin/sh", "-c", `echo '{"msg":"cannot open store"}' >&2; exit 3`, "sh"}
	var progress bytes.Buffer
	o.Progress = &progress
	_, err := Run(t.Context(), o)
	require.ErrorContains(t, err, "server exited before it was ready")
	require.ErrorContains(t, err, "exit status 3")
	require.ErrorContains(t, err, "cannot open store")
	require.Contains(t, progress.String(), "bench: starting a server (sqlite)")
}

// TestRunIdle runs an idle load test against a server in this process: the
// subscribers connect and nothing is published, so the report has no
// publish or delivery section but the server's memory with them.
func TestRunIdle(t *testing.T) {
	t.Parallel()
	srv := heraldtest.StartDefault(t)
	o := validOptions()
	o.URL, o.Token = srv.URL, heraldtest.AdminToken
	o.Idle, o.Subscribers, o.Topics, o.Duration, o.Warmup = true, 6, 2, 200*time.Millisecond, 0
	var progress bytes.Buffer
	o.Progress = &progress
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	rep, err := Run(ctx, o)
	require.NoError(t, err)

	require.Equal(t, 6, rep.Connect.Subscribers)
	require.Nil(t, rep.Publish)
	require.Nil(t, rep.Delivery)
	require.Nil(t, rep.Nodes)
	require.True(t, rep.Config.Idle)
	require.False(t, rep.Config.OwnServer)
	s := rep.Server
	require.Empty(t, s.MetricsError)
	require.NotNil(t, s.RSSWithSubscribers)
	require.NotNil(t, s.Goroutines)
	require.GreaterOrEqual(t, *s.Goroutines, 6.0, "a goroutine per stream at least")
	require.Positive(t, s.WindowS)
	require.Contains(t, progress.String(), "bench: connecting 6 subscribers")
	require.Contains(t, progress.String(), "bench: holding 6 idle connections")

	var table bytes.Buffer
	require.NoError(t, rep.WriteTable(&table))
	require.Contains(t, table.String(), "6 idle subscribers on 2 topic(s)")
	require.NotContains(t, table.String(), "\npublish\n")
	require.True(t, strings.HasPrefix(table.String(), "herald bench: "+srv.URL+" (remote)\n"))

	apps, err := srv.Admin.ListApps(t.Context())
	require.NoError(t, err)
	require.Empty(t, apps, "the app Run made is gone again")
}
