package loadtest

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata from the current output")

func ptr(v float64) *float64 { return &v }

// fixedReports are reports of each kind of run, with every optional figure
// present somewhere, as Run would fill them in.
func fixedReports() map[string]*Report {
	full := ReportServer{
		WindowS: 10.02, CPUSeconds: ptr(3.5), CPUCores: ptr(0.349), CPUPerDeliveryMicros: ptr(8.75),
		RSSBefore: ptr(20 << 20), RSSWithSubscribers: ptr(52 << 20), RSSAfter: ptr(53 << 20), RSSPerConnection: ptr(32 << 10),
		HeapBefore: ptr(4 << 20), HeapWithSubscribers: ptr(12 << 20), HeapPerConnection: ptr(8 << 10),
		StackWithSubscribers: ptr(8 << 20), StackPerConnection: ptr(8 << 10), Goroutines: ptr(2013),
		EventsDelivered: ptr(400_000), EventsLagged: ptr(0), SlowDisconnects: ptr(0), MessagesPublished: ptr(400),
		CPUPerPublishMicros: ptr(8750), PublishCommitP50: &BucketBound{Ms: 0.5}, PublishCommitP99: &BucketBound{Ms: 10, Beyond: true},
	}
	pg := full
	pg.PGListenerReconnects, pg.PGQueueUsage, pg.PGNotificationsReceived, pg.PGHistoryReads = ptr(0), ptr(0.000012), ptr(1990), ptr(3)
	lat := LatencyMs{Samples: 400_000, Mean: 1.2, P50: 0.8, P90: 2.5, P99: 12.25, P999: 150, Max: 1234}
	single := &Report{
		Config: ReportConfig{URL: "http://127.0.0.1:40001", OwnServer: true, Store: "sqlite", Nodes: 1, PublishNode: "0",
			Subscribers: 1000, Topics: 1, Rate: 100, Publishers: 4, Size: 128, Batch: 1, DurationS: 10, WarmupS: 1},
		Connect:  ReportConnect{Subscribers: 1000, Seconds: 1.234},
		Publish:  &ReportPublish{Accepted: 1000, Requests: 1000, PerSecond: 100, Latency: LatencyMs{Samples: 1000, Mean: 0.4, P50: 0.3, P90: 0.5, P99: 2, P999: 7, Max: 9.5}},
		Delivery: &ReportDelivery{DeliveryCounts: DeliveryCounts{Expected: 1_000_000, Delivered: 1_000_000}, PerSecond: 100_000, Latency: lat},
		Server:   full,
		Client:   ReportClient{CPUSeconds: ptr(4.25), FileLimit: 1048576},
	}
	remote := &Report{
		Config: ReportConfig{URL: "https://herald.example", Nodes: 1, PublishNode: "0",
			Subscribers: 10, Topics: 3, Rate: 5000, Publishers: 2, Size: 64, Batch: 1, DurationS: 2, WarmupS: 0},
		Connect: ReportConnect{Subscribers: 10, Seconds: 0.05},
		Publish: &ReportPublish{BehindSchedule: true, Accepted: 800, Requests: 800, Errors: 3, FirstError: "herald: 503 unavailable",
			PerSecond: 400, Latency: LatencyMs{Samples: 800, P50: 4, P99: 120, Max: 300}},
		Delivery: &ReportDelivery{DeliveryCounts: DeliveryCounts{Expected: 2667, Delivered: 2600, Lost: 67, Duplicates: 2, OutOfOrder: 1, LaggedEvents: 1},
			Missed: 60, Malformed: 4, Disconnected: 1, FirstDisconnect: "stream of bench-1 ended: EOF", PerSecond: 1300, Latency: lat},
		Server: ReportServer{WindowS: 2, MetricsError: "scrape metrics: 404 Not Found"},
	}
	cluster := &Report{
		Config: ReportConfig{URL: "http://127.0.0.1:40001", OwnServer: true, Store: "postgres", Broadcast: "nats", Nodes: 2,
			URLs: []string{"http://127.0.0.1:40001", "http://127.0.0.1:40002"}, PublishNode: "1",
			Subscribers: 4, Topics: 1, Rate: 0, Publishers: 8, Size: 128, Batch: 100, DurationS: 5, WarmupS: 1},
		Connect: ReportConnect{Subscribers: 4, Seconds: 0.2},
		Publish: &ReportPublish{Accepted: 250_000, Requests: 2500, PerSecond: 50_000, Latency: LatencyMs{Samples: 2500, P50: 15, P99: 40, Max: 80}},
		Delivery: &ReportDelivery{DeliveryCounts: DeliveryCounts{Expected: 1_000_000, Delivered: 1_000_000}, PerSecond: 200_000, Latency: lat,
			LatencyPublishingNode: &LatencyMs{Samples: 500_000, P50: 0.9, P90: 2, P99: 10, P999: 20, Max: 30},
			LatencyCrossNode:      &LatencyMs{Samples: 500_000, P50: 3, P90: 5, P99: 25, P999: 60, Max: 120}},
		Server: pg,
		Nodes: []ReportNode{
			{Node: 0, URL: "http://127.0.0.1:40001", Server: pg, Delivery: &ReportNodeDelivery{Subscribers: 2, DeliveryCounts: DeliveryCounts{Expected: 500_000, Delivered: 500_000}}},
			{Node: 1, URL: "http://127.0.0.1:40002", Publishes: true, Server: ReportServer{WindowS: 5, MetricsError: "scrape metrics: connection refused"},
				Delivery: &ReportNodeDelivery{Subscribers: 2, DeliveryCounts: DeliveryCounts{Expected: 500_000, Delivered: 499_990, Lost: 10, Duplicates: 1, OutOfOrder: 2, LaggedEvents: 1}, Disconnected: 1}},
		},
		Client: ReportClient{CPUSeconds: ptr(1.5), FileLimit: 1024},
	}
	idle := &Report{
		Config:  ReportConfig{URL: "http://127.0.0.1:40001", OwnServer: true, Store: "sqlite", Nodes: 1, Subscribers: 10000, Topics: 1, DurationS: 5, WarmupS: 1, Idle: true},
		Connect: ReportConnect{Subscribers: 10000, Seconds: 4.5},
		Server:  full,
		Client:  ReportClient{CPUSeconds: ptr(0.01), FileLimit: 1048576},
	}
	idleCluster := &Report{
		Config: ReportConfig{URL: "http://127.0.0.1:40001", OwnServer: true, Store: "postgres", Broadcast: "notify", Nodes: 2,
			URLs: []string{"http://127.0.0.1:40001", "http://127.0.0.1:40002"}, Subscribers: 50, Topics: 2, DurationS: 5, WarmupS: 1, Idle: true},
		Server: pg,
		Nodes: []ReportNode{
			{Node: 0, URL: "http://127.0.0.1:40001", Server: pg},
			{Node: 1, URL: "http://127.0.0.1:40002", Server: ReportServer{WindowS: 5}},
		},
	}
	return map[string]*Report{"single": single, "remote": remote, "cluster": cluster, "idle": idle, "idle-cluster": idleCluster}
}

// TestReportGolden pins the table and the JSON of fixed reports to files
// in testdata: the README documents both, and scripts read the JSON, so a
// change to either must be deliberate (go test -update, then read the
// diff).
func TestReportGolden(t *testing.T) {
	t.Parallel()
	for name, r := range fixedReports() {
		for _, form := range []struct {
			ext   string
			write func(*Report, *bytes.Buffer) error
		}{
			{"txt", func(r *Report, b *bytes.Buffer) error { return r.WriteTable(b) }},
			{"json", func(r *Report, b *bytes.Buffer) error { return r.WriteJSON(b) }},
		} {
			var out bytes.Buffer
			require.NoError(t, form.write(r, &out))
			path := filepath.Join("testdata", name+"."+form.ext)
			if *update {
				require.NoError(t, os.WriteFile(path, out.Bytes(), 0o644))
				continue
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err, "go test -update writes it")
			require.Equal(t, string(want), out.String(), "%s: the output changed", path)
		}
	}
}

// TestReportJSONRoundTrip checks that the JSON reads back into the same
// report: what --json prints, a script (or the cluster tests) can load.
func TestReportJSONRoundTrip(t *testing.T) {
	t.Parallel()
	for name, r := range fixedReports() {
		var out bytes.Buffer
		require.NoError(t, r.WriteJSON(&out))
		var back Report
		require.NoError(t, json.Unmarshal(out.Bytes(), &back), name)
		require.Equal(t, r, &back, name)
		require.True(t, strings.HasSuffix(out.String(), "}\n"), "one JSON document and a newline")
	}
}

// TestNewLatency checks the report's percentiles: nearest rank over the
// samples, read from the histogram and given in milliseconds.
func TestNewLatency(t *testing.T) {
	t.Parallel()
	var h latencyHistogram
	require.Equal(t, LatencyMs{}, newLatency(&h), "no samples: all zero")
	// 1, 2, …, 1000 µs: the q-quantile by nearest rank is q×1000 µs.
	for i := range 1000 {
		h.Record(time.Duration(i+1) * time.Microsecond)
	}
	l := newLatency(&h)
	require.EqualValues(t, 1000, l.Samples)
	require.InDelta(t, 0.5005, l.Mean, 1e-9)
	require.Equal(t, 1.0, l.Max)
	for _, c := range []struct{ got, want float64 }{{l.P50, 0.5}, {l.P90, 0.9}, {l.P99, 0.99}, {l.P999, 0.999}} {
		require.InEpsilon(t, c.want, c.got, 0.01, "within the histogram's 1/64 bucket width")
	}
	require.LessOrEqual(t, l.P999, l.Max)
}
