package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// benchReport is the outcome of one run: --json prints it as it is, and
// writeBenchTable prints it for people. Sections that do not apply (publish
// and delivery in --idle mode; figures the server does not export; nodes on
// a single server) are nil.
type benchReport struct {
	Config   benchReportConfig    `json:"config"`
	Connect  benchReportConnect   `json:"connect"`
	Publish  *benchReportPublish  `json:"publish,omitempty"`
	Delivery *benchReportDelivery `json:"delivery,omitempty"`
	// Server is node 0's figures: the only server's, or on a cluster the
	// first node's, which Nodes repeats.
	Server benchReportServer `json:"server"`
	Nodes  []benchReportNode `json:"nodes,omitempty"`
	Client benchReportClient `json:"client"`
}

// benchReportConfig echoes what was run.
type benchReportConfig struct {
	URL       string `json:"url"` // node 0's
	OwnServer bool   `json:"own_server"`
	// Store is the store of the servers bench started (sqlite or
	// postgres); empty for a remote server.
	Store string `json:"store,omitempty"`
	// Broadcast is the cluster transport of the servers bench started on
	// Postgres: notify (LISTEN/NOTIFY) or nats.
	Broadcast string `json:"broadcast,omitempty"`
	Nodes     int    `json:"nodes"`
	// URLs lists every node's URL on a cluster.
	URLs []string `json:"urls,omitempty"`
	// PublishNode is the node messages were published through, or "all".
	PublishNode string  `json:"publish_node,omitempty"`
	Subscribers int     `json:"subscribers"`
	Topics      int     `json:"topics"`
	Rate        float64 `json:"rate"` // 0: as fast as possible
	Publishers  int     `json:"publishers"`
	Size        int     `json:"size"`
	Batch       int     `json:"batch"` // messages per publish request (1: single publishes)
	DurationS   float64 `json:"duration_seconds"`
	WarmupS     float64 `json:"warmup_seconds"`
	Idle        bool    `json:"idle"`
}

// benchReportConnect is how long the subscribers took to connect, until the
// server counted every one of them.
type benchReportConnect struct {
	Subscribers int     `json:"subscribers"`
	Seconds     float64 `json:"seconds"`
}

// latencyMs is a latency distribution in milliseconds.
type latencyMs struct {
	Samples uint64  `json:"samples"`
	Mean    float64 `json:"mean"`
	P50     float64 `json:"p50"`
	P90     float64 `json:"p90"`
	P99     float64 `json:"p99"`
	P999    float64 `json:"p999"`
	Max     float64 `json:"max"`
}

func newLatencyMs(h *latencyHistogram) latencyMs {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return latencyMs{
		Samples: h.Count(), Mean: ms(h.Mean()),
		P50: ms(h.Quantile(.50)), P90: ms(h.Quantile(.90)), P99: ms(h.Quantile(.99)),
		P999: ms(h.Quantile(.999)), Max: ms(h.Max()),
	}
}

// benchReportPublish covers the publishes sent inside the measured window;
// latency is from sending the request to reading its 202.
type benchReportPublish struct {
	// BehindSchedule is set when the publishers, each waiting for a 202
	// before its next request, sent less than 95% of what --rate asked.
	BehindSchedule bool      `json:"behind_schedule,omitempty"`
	Accepted       uint64    `json:"accepted"` // messages, as Errors
	Requests       uint64    `json:"requests"` // that carried the accepted messages (as many, unless --batch)
	Errors         uint64    `json:"errors"`
	FirstError     string    `json:"first_error,omitempty"`
	PerSecond      float64   `json:"per_second"`
	Latency        latencyMs `json:"latency_ms"`
}

// benchReportDelivery covers the messages accepted inside the measured
// window: Expected is each one once per subscriber of its topic, Delivered
// how many of those arrived (each counted once), Lost the difference.
// Latency is from the publisher taking the send time to the subscriber
// parsing the frame, both on the bench's clock.
type benchReportDelivery struct {
	Expected        uint64    `json:"expected"`
	Delivered       uint64    `json:"delivered"`
	Lost            uint64    `json:"lost"`
	Duplicates      uint64    `json:"duplicates"`
	OutOfOrder      uint64    `json:"out_of_order"`
	LaggedEvents    uint64    `json:"lagged_events"`
	Missed          uint64    `json:"missed"`
	Malformed       uint64    `json:"malformed"`
	Disconnected    uint64    `json:"disconnected"`
	FirstDisconnect string    `json:"first_disconnect,omitempty"`
	PerSecond       float64   `json:"per_second"`
	Latency         latencyMs `json:"latency_ms"`
	// On a cluster, Latency split: messages received on the node they were
	// published through, and on another node (through Postgres).
	LatencyPublishingNode *latencyMs `json:"latency_publishing_node_ms,omitempty"`
	LatencyCrossNode      *latencyMs `json:"latency_cross_node_ms,omitempty"`
}

// benchReportNode is one node of a cluster: its subscribers' delivery and
// its server figures.
type benchReportNode struct {
	Node      int                      `json:"node"`
	URL       string                   `json:"url"`
	Publishes bool                     `json:"publishes"` // messages were published through it
	Delivery  *benchReportNodeDelivery `json:"delivery,omitempty"`
	Server    benchReportServer        `json:"server"`
}

// benchReportNodeDelivery is benchReportDelivery for the subscribers of one
// node.
type benchReportNodeDelivery struct {
	Subscribers  int    `json:"subscribers"`
	Expected     uint64 `json:"expected"`
	Delivered    uint64 `json:"delivered"`
	Lost         uint64 `json:"lost"`
	Duplicates   uint64 `json:"duplicates"`
	OutOfOrder   uint64 `json:"out_of_order"`
	LaggedEvents uint64 `json:"lagged_events"`
	Disconnected uint64 `json:"disconnected"`
}

// benchReportServer is read from the server's /metrics, so it works for a
// remote server too. CPU and counters cover the measured window (from its
// start to the end of the grace period); memory is sampled before the
// subscribers connect, once they all have, and at the end. Per-connection
// figures divide the growth by the subscriber count. The Postgres listener's
// figures (PG…) exist on the Postgres store only: reconnects and queue usage
// as they stand at the end, notifications and history reads over the window.
type benchReportServer struct {
	WindowS    float64  `json:"window_seconds"`
	CPUSeconds *float64 `json:"cpu_seconds,omitempty"`
	CPUCores   *float64 `json:"cpu_cores,omitempty"` // CPU seconds per second of the window
	// CPUPerDeliveryMicros is the server's CPU over the window divided by the
	// events it wrote to SSE streams in it, in microseconds: the fan-out
	// cost the headline of the table gives.
	CPUPerDeliveryMicros *float64     `json:"cpu_per_delivery_us,omitempty"`
	RSSBefore            *float64     `json:"rss_before_bytes,omitempty"`
	RSSWithSubscribers   *float64     `json:"rss_with_subscribers_bytes,omitempty"`
	RSSAfter             *float64     `json:"rss_after_bytes,omitempty"`
	RSSPerConnection     *float64     `json:"rss_per_connection_bytes,omitempty"`
	HeapBefore           *float64     `json:"heap_inuse_before_bytes,omitempty"`
	HeapWithSubscribers  *float64     `json:"heap_inuse_with_subscribers_bytes,omitempty"`
	HeapPerConnection    *float64     `json:"heap_inuse_per_connection_bytes,omitempty"`
	StackWithSubscribers *float64     `json:"stack_inuse_with_subscribers_bytes,omitempty"`
	StackPerConnection   *float64     `json:"stack_inuse_per_connection_bytes,omitempty"`
	Goroutines           *float64     `json:"goroutines_with_subscribers,omitempty"`
	EventsDelivered      *float64     `json:"events_delivered,omitempty"`
	EventsLagged         *float64     `json:"events_lagged,omitempty"`
	SlowDisconnects      *float64     `json:"slow_consumer_disconnects,omitempty"`
	MessagesPublished    *float64     `json:"messages_published,omitempty"`
	CPUPerPublishMicros  *float64     `json:"cpu_per_publish_us,omitempty"` // CPUSeconds / MessagesPublished: deliveries included
	PublishCommitP50     *bucketBound `json:"publish_commit_p50,omitempty"`
	PublishCommitP99     *bucketBound `json:"publish_commit_p99,omitempty"`

	PGListenerReconnects    *float64 `json:"pg_listener_reconnects_total,omitempty"`
	PGQueueUsage            *float64 `json:"pg_notification_queue_usage,omitempty"`
	PGNotificationsReceived *float64 `json:"pg_notifications_received,omitempty"`
	PGHistoryReads          *float64 `json:"pg_history_reads,omitempty"`

	MetricsError string `json:"metrics_error,omitempty"`
}

// benchReportClient is the bench process's own cost, which shares the
// machine with a server it started.
type benchReportClient struct {
	CPUSeconds *float64 `json:"cpu_seconds,omitempty"` // over the same window as the server's
	FileLimit  uint64   `json:"file_limit,omitempty"`
}

// Series read from the server's /metrics.
const (
	metricCPU             = "process_cpu_seconds_total"
	metricRSS             = "process_resident_memory_bytes"
	metricHeapInuse       = "go_memstats_heap_inuse_bytes"
	metricStackInuse      = "go_memstats_stack_inuse_bytes"
	metricGoroutines      = "go_goroutines"
	metricDelivered       = "herald_events_delivered_total"
	metricLagged          = "herald_events_lagged_total"
	metricSlowDisconnects = "herald_slow_consumer_disconnects_total"
	metricPublished       = "herald_messages_published_total"
	metricPublishDuration = "herald_publish_duration_seconds"
	metricPGReconnects    = "herald_pg_listener_reconnects_total"
	metricPGQueueUsage    = "herald_pg_notification_queue_usage"
	metricPGReceived      = "herald_pg_notifications_received_total"
	metricPGHistoryReads  = "herald_cluster_history_reads_total"
)

// promSnapshot is one scrape of /metrics; nil when the scrape failed.
type promSnapshot map[string]float64

// scrapeMetrics fetches and parses base's /metrics.
func scrapeMetrics(ctx context.Context, hc *http.Client, base string) (promSnapshot, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/metrics", nil)
	if err != nil {
		return nil, fmt.Errorf("scrape metrics: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape metrics: %w", err)
	}
	defer func() { _ = resp.Body.Close() }() // read to the end or abandoned; nothing to report
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape metrics: %s", resp.Status)
	}
	m, err := parsePromText(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scrape metrics: %w", err)
	}
	return m, nil
}

// value returns a series' value, or nil when it (or the snapshot) is absent.
func (s promSnapshot) value(series string) *float64 {
	v, ok := s[series]
	if !ok {
		return nil
	}
	return &v
}

// metricDelta returns after − before for a series present in both.
func metricDelta(before, after promSnapshot, series string) *float64 {
	a, b := after.value(series), before.value(series)
	if a == nil || b == nil {
		return nil
	}
	d := *a - *b
	return &d
}

// perConnection divides d among n connections.
func perConnection(d *float64, n int) *float64 {
	if d == nil || n <= 0 {
		return nil
	}
	v := *d / float64(n)
	return &v
}

// bucketBound is a quantile read from a Prometheus histogram: the upper
// bound of the bucket holding it, or, when it lies in the +Inf bucket, the
// largest finite bound with Beyond set (JSON has no infinity).
type bucketBound struct {
	Ms     float64 `json:"ms"`
	Beyond bool    `json:"beyond_largest_bucket,omitempty"`
}

func (b bucketBound) String() string {
	if b.Beyond {
		return "> " + fmtMs(b.Ms)
	}
	return "≤ " + fmtMs(b.Ms)
}

// histogramQuantileDelta estimates the q-quantile of the Prometheus
// histogram name (in seconds) from the growth of its buckets between two
// scrapes. It is nil when the histogram is absent or saw nothing.
func histogramQuantileDelta(before, after promSnapshot, name string, q float64) *bucketBound {
	type bucket struct{ le, count float64 }
	var bs []bucket
	for series, v := range after {
		le, ok := strings.CutPrefix(series, name+`_bucket{le="`)
		if !ok {
			continue
		}
		bound, err := strconv.ParseFloat(strings.TrimSuffix(le, `"}`), 64)
		if err != nil {
			continue
		}
		bs = append(bs, bucket{bound, v - before[series]})
	}
	if len(bs) == 0 {
		return nil
	}
	slices.SortFunc(bs, func(a, b bucket) int { return cmp.Compare(a.le, b.le) })
	total := bs[len(bs)-1].count
	if total <= 0 {
		return nil
	}
	for i, b := range bs {
		if b.count < q*total {
			continue
		}
		if !math.IsInf(b.le, 1) {
			return &bucketBound{Ms: b.le * 1000}
		}
		if i == 0 {
			return nil
		}
		return &bucketBound{Ms: bs[i-1].le * 1000, Beyond: true}
	}
	return nil
}

// writeBenchTable prints r for people: a section per concern, one figure
// per line.
func writeBenchTable(w io.Writer, r *benchReport) error {
	var b strings.Builder
	row := func(key, format string, args ...any) {
		fmt.Fprintf(&b, "  %-20s%s\n", key, fmt.Sprintf(format, args...))
	}
	section := func(name string) { fmt.Fprintf(&b, "\n%s\n", name) }

	c := r.Config
	server := "remote"
	if c.OwnServer {
		server = "started by bench"
	}
	switch {
	case c.Nodes > 1:
		server = fmt.Sprintf("%d nodes on %s over %s, started by bench", c.Nodes, c.Store, c.Broadcast)
	case c.OwnServer && c.Store != "":
		server = "started by bench, " + c.Store
	}
	fmt.Fprintf(&b, "herald bench: %s (%s)\n", c.URL, server)
	if c.Idle {
		row("run", "%d idle subscribers on %d topic(s), held %gs after %gs to settle", c.Subscribers, c.Topics, c.DurationS, c.WarmupS)
	} else {
		rate := fmt.Sprintf("%g msg/s", c.Rate)
		if c.Rate == 0 {
			rate = "max rate"
		}
		batch := ""
		if c.Batch > 1 {
			batch = fmt.Sprintf(" in batches of %d", c.Batch)
		}
		row("run", "%d subscribers on %d topic(s); %s from %d publishers%s; %gs measured after %gs warmup; %d-byte messages",
			c.Subscribers, c.Topics, rate, c.Publishers, batch, c.DurationS, c.WarmupS, c.Size)
		if c.Nodes > 1 {
			through := "node " + c.PublishNode
			if c.PublishNode == publishAll {
				through = "every node in turn"
			}
			row("cluster", "subscribers round-robin over %d nodes; publishing through %s", c.Nodes, through)
		}
	}
	row("connect", "%d subscribers in %.2fs", r.Connect.Subscribers, r.Connect.Seconds)
	if us := r.Server.CPUPerDeliveryMicros; us != nil && !c.Idle {
		row("server cpu", "%.2f µs per delivery (server CPU over the window / events written to streams)", *us)
	}

	if p := r.Publish; p != nil {
		section("publish")
		target := ""
		if c.Rate > 0 {
			target = fmt.Sprintf(" of %g/s target", c.Rate)
		}
		row("accepted", "%d (%.1f/s%s)", p.Accepted, p.PerSecond, target)
		if c.Batch > 1 {
			row("requests", "%d (%.1f/s), each a batch of up to %d", p.Requests, float64(p.Requests)/c.DurationS, c.Batch)
		}
		row("errors", "%d", p.Errors)
		if p.FirstError != "" {
			row("first error", "%s", p.FirstError)
		}
		row("request latency", "p50 %s  p99 %s  max %s", fmtMs(p.Latency.P50), fmtMs(p.Latency.P99), fmtMs(p.Latency.Max))
		if p.BehindSchedule {
			row("note", "the publishers fell behind --rate (each waits for its 202); try more --publishers")
		}
	}
	if d := r.Delivery; d != nil {
		pct := 100.0
		if d.Expected > 0 {
			pct = 100 * float64(d.Delivered) / float64(d.Expected)
		}
		section("delivery")
		row("delivered/expected", "%d / %d (%.3f%%, %.0f/s)", d.Delivered, d.Expected, pct, d.PerSecond)
		row("lost", "%d", d.Lost)
		row("duplicates", "%d", d.Duplicates)
		row("out of order", "%d", d.OutOfOrder)
		row("lagged events", "%d (%d missed)", d.LaggedEvents, d.Missed)
		if d.Malformed > 0 {
			row("malformed frames", "%d", d.Malformed)
		}
		if d.Disconnected > 0 {
			row("disconnected early", "%d (first: %s)", d.Disconnected, d.FirstDisconnect)
		}
		l := d.Latency
		row("end-to-end latency", "p50 %s  p90 %s  p99 %s  p99.9 %s  max %s",
			fmtMs(l.P50), fmtMs(l.P90), fmtMs(l.P99), fmtMs(l.P999), fmtMs(l.Max))
		split := func(key string, l *latencyMs) {
			if l != nil {
				row(key, "p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (%d samples)",
					fmtMs(l.P50), fmtMs(l.P90), fmtMs(l.P99), fmtMs(l.P999), fmtMs(l.Max), l.Samples)
			}
		}
		split("  publishing node", d.LatencyPublishingNode)
		split("  cross-node", d.LatencyCrossNode)
	}

	if len(r.Nodes) > 0 {
		section("nodes")
		var cpu float64
		cpuKnown := true
		for _, n := range r.Nodes {
			key := fmt.Sprintf("node %d", n.Node)
			if n.Publishes {
				key += " (publishes)"
			}
			var parts []string
			if d := n.Delivery; d != nil {
				pct := 100.0
				if d.Expected > 0 {
					pct = 100 * float64(d.Delivered) / float64(d.Expected)
				}
				parts = append(parts, fmt.Sprintf("%d subscribers: %d / %d delivered (%.3f%%), %d lost, %d dup, %d out of order",
					d.Subscribers, d.Delivered, d.Expected, pct, d.Lost, d.Duplicates, d.OutOfOrder))
			}
			if s := n.Server; s.CPUCores != nil {
				parts = append(parts, fmt.Sprintf("cpu %.0f%% of a core", 100**s.CPUCores))
				cpu += *s.CPUSeconds
			} else {
				cpuKnown = false
			}
			if len(parts) == 0 {
				parts = append(parts, "n/a")
			}
			row(key, "%s", strings.Join(parts, "; "))
			if s := n.Server; s.PGListenerReconnects != nil {
				row("", "postgres: %s", pgFigures(s))
			}
			if n.Server.MetricsError != "" {
				row("", "metrics unavailable: %s", n.Server.MetricsError)
			}
		}
		if cpuKnown && r.Server.WindowS > 0 {
			row("cpu, all nodes", "%.2fs over %.1fs (%.0f%% of one core)", cpu, r.Server.WindowS, 100*cpu/r.Server.WindowS)
		}
	}

	s := r.Server
	if len(r.Nodes) > 0 {
		section("server: node 0")
	} else {
		section("server")
	}
	if s.MetricsError != "" {
		row("metrics", "unavailable: %s", s.MetricsError)
	}
	if s.CPUSeconds != nil && s.CPUCores != nil {
		row("cpu", "%.2fs over %.1fs (%.0f%% of one core)", *s.CPUSeconds, s.WindowS, 100**s.CPUCores)
		if s.CPUPerPublishMicros != nil {
			row("cpu/publish", "%.1f µs per message published (its deliveries included)", *s.CPUPerPublishMicros)
		}
	} else {
		row("cpu", "n/a")
	}
	row("rss", "%s before subscribers, %s with them, %s at the end", fmtBytes(s.RSSBefore), fmtBytes(s.RSSWithSubscribers), fmtBytes(s.RSSAfter))
	noisy := ""
	if c.Subscribers < 100 {
		noisy = " (too few subscribers for per-connection figures to mean much)"
	}
	row("rss/connection", "%s%s", fmtBytes(s.RSSPerConnection), noisy)
	row("heap in use", "%s before, %s with subscribers (%s/connection)", fmtBytes(s.HeapBefore), fmtBytes(s.HeapWithSubscribers), fmtBytes(s.HeapPerConnection))
	if s.StackPerConnection != nil {
		row("stacks in use", "%s with subscribers (%s/connection)", fmtBytes(s.StackWithSubscribers), fmtBytes(s.StackPerConnection))
	}
	if s.Goroutines != nil {
		row("goroutines", "%.0f with subscribers", *s.Goroutines)
	}
	if !c.Idle && s.EventsDelivered != nil {
		row("counters (window)", "published %s, delivered %s, lagged %s, slow disconnects %s",
			fmtCount(s.MessagesPublished), fmtCount(s.EventsDelivered), fmtCount(s.EventsLagged), fmtCount(s.SlowDisconnects))
	}
	if s.PublishCommitP50 != nil && s.PublishCommitP99 != nil {
		row("publish→commit", "p50 %s  p99 %s (server's histogram buckets)", s.PublishCommitP50, s.PublishCommitP99)
	}
	if s.PGListenerReconnects != nil {
		row("postgres", "%s", pgFigures(s))
	}

	section("bench client")
	if r.Client.CPUSeconds != nil {
		row("cpu", "%.2fs over the same window", *r.Client.CPUSeconds)
	}
	if r.Client.FileLimit > 0 {
		row("open file limit", "%d", r.Client.FileLimit)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// pgFigures is one line of a server's Postgres listener figures.
func pgFigures(s benchReportServer) string {
	queue := "n/a"
	if s.PGQueueUsage != nil {
		queue = fmt.Sprintf("%.6f", *s.PGQueueUsage)
	}
	return fmt.Sprintf("listener reconnects %s, notification queue usage %s (at the end); notifications received %s, history reads %s (window)",
		fmtCount(s.PGListenerReconnects), queue, fmtCount(s.PGNotificationsReceived), fmtCount(s.PGHistoryReads))
}

func fmtMs(ms float64) string {
	switch {
	case ms >= 100:
		return fmt.Sprintf("%.0fms", ms)
	case ms >= 1:
		return fmt.Sprintf("%.2fms", ms)
	default:
		return fmt.Sprintf("%.3fms", ms)
	}
}

func fmtBytes(b *float64) string {
	if b == nil {
		return "n/a"
	}
	v := *b
	neg := ""
	if v < 0 {
		neg, v = "-", -v
	}
	switch {
	case v >= 1<<30:
		return fmt.Sprintf("%s%.2f GiB", neg, v/(1<<30))
	case v >= 1<<20:
		return fmt.Sprintf("%s%.1f MiB", neg, v/(1<<20))
	case v >= 1<<10:
		return fmt.Sprintf("%s%.1f KiB", neg, v/(1<<10))
	default:
		return fmt.Sprintf("%s%.0f B", neg, v)
	}
}

func fmtCount(v *float64) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.0f", *v)
}
