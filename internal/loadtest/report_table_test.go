package loadtest

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWriteTable(t *testing.T) {
	t.Parallel()
	cpu, cores, rss := 1.5, 0.15, 30e6
	r := &Report{
		Config:   ReportConfig{URL: "http://x", OwnServer: true, Subscribers: 10, Topics: 1, Rate: 100, Publishers: 4, Size: 128, DurationS: 10, WarmupS: 1},
		Publish:  &ReportPublish{Accepted: 1000, PerSecond: 100},
		Delivery: &ReportDelivery{DeliveryCounts: DeliveryCounts{Expected: 10000, Delivered: 9990, Lost: 10}},
		Server:   ReportServer{WindowS: 10, CPUSeconds: &cpu, CPUCores: &cores, RSSWithSubscribers: &rss},
	}
	var out bytes.Buffer
	require.NoError(t, r.WriteTable(&out))
	s := out.String()
	require.Contains(t, s, "9990 / 10000 (99.900%")
	require.Contains(t, s, "15% of one core")
	require.Contains(t, s, "n/a before subscribers, 28.6 MiB with them")
	require.Contains(t, s, "of 100/s target")
	requireTidyLines(t, s)
	require.NotContains(t, s, "nodes")
	require.NotContains(t, s, "cross-node")

	// A cluster: latency split by where the subscriber was, and a line or
	// two per node.
	zero, usage := 0.0, 0.25
	r.Config.Nodes, r.Config.Store, r.Config.PublishNode = 2, "postgres", "0"
	r.Delivery.LatencyPublishingNode = &LatencyMs{Samples: 5000, P50: 2, P99: 9, Max: 12}
	r.Delivery.LatencyCrossNode = &LatencyMs{Samples: 4990, P50: 4, P99: 31, Max: 40}
	pg := ReportServer{WindowS: 10, CPUSeconds: &cpu, CPUCores: &cores, PGListenerReconnects: &zero, PGQueueUsage: &usage}
	r.Nodes = []ReportNode{
		{Node: 0, Publishes: true, Server: pg, Delivery: &ReportNodeDelivery{Subscribers: 5, DeliveryCounts: DeliveryCounts{Expected: 5000, Delivered: 5000}}},
		{Node: 1, Server: pg, Delivery: &ReportNodeDelivery{Subscribers: 5, DeliveryCounts: DeliveryCounts{Expected: 5000, Delivered: 4990, Lost: 10}}},
	}
	out.Reset()
	require.NoError(t, r.WriteTable(&out))
	s = out.String()
	require.Contains(t, s, "2 nodes on postgres")
	require.Contains(t, s, "publishing through node 0")
	require.Contains(t, s, "cross-node        p50 4.00ms  p90 0.000ms  p99 31.00ms")
	require.Contains(t, s, "(4990 samples)")
	require.Contains(t, s, "node 0 (publishes)  5 subscribers: 5000 / 5000 delivered (100.000%)")
	require.Contains(t, s, "node 1              5 subscribers: 4990 / 5000 delivered (99.800%), 10 lost")
	require.Contains(t, s, "listener reconnects 0, notification queue usage 0.250000")
	require.Contains(t, s, "cpu, all nodes      3.00s over 10.0s (30% of one core)")
	requireTidyLines(t, s)
}

func TestTableFormats(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		ms   float64
		want string
	}{{0, "0.000ms"}, {0.0456, "0.046ms"}, {1, "1.00ms"}, {99.994, "99.99ms"}, {100, "100ms"}, {1234.5, "1234ms"}} {
		require.Equal(t, c.want, fmtMs(c.ms), "%v", c.ms)
	}
	for _, c := range []struct {
		b    float64
		want string
	}{{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536 << 10, "1.5 MiB"}, {3 << 30, "3.00 GiB"}, {-2048, "-2.0 KiB"}} {
		require.Equal(t, c.want, fmtBytes(&c.b), "%v", c.b)
	}
	require.Equal(t, "n/a", fmtBytes(nil))
	n := 12.0
	require.Equal(t, "12", fmtCount(&n))
	require.Equal(t, "n/a", fmtCount(nil))
	require.Equal(t, 100.0, deliveredPercent(0, 0), "nothing expected: nothing lost")
	require.InDelta(t, 99.5, deliveredPercent(199, 200), 1e-9)

	for _, c := range []struct {
		cfg  ReportConfig
		want string
	}{
		{ReportConfig{Nodes: 1}, "remote"},
		{ReportConfig{Nodes: 1, OwnServer: true}, "started by bench"},
		{ReportConfig{Nodes: 1, OwnServer: true, Store: "sqlite"}, "started by bench, sqlite"},
		{ReportConfig{Nodes: 3, OwnServer: true, Store: "postgres", Broadcast: "notify"}, "3 nodes on postgres over notify, started by bench"},
	} {
		require.Equal(t, c.want, serverKind(c.cfg))
	}
}

// requireTidyLines checks that every line of s ends in a newline, with no
// space before it.
func requireTidyLines(t *testing.T, s string) {
	t.Helper()
	for line := range strings.Lines(s) {
		require.Equal(t, strings.TrimRight(line, " \n")+"\n", line, "no trailing spaces")
	}
}
