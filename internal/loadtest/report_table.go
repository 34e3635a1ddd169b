package loadtest

import (
	"fmt"
	"io"
	"strings"
)

// WriteTable writes r for people: a headline, then a section per concern
// (publish, delivery, nodes, server, bench client), one figure per line.
// Sections and lines whose figures are absent are left out or say n/a.
func (r *Report) WriteTable(w io.Writer) error {
	var t table
	t.headline(r)
	if r.Publish != nil {
		t.publish(r.Config, r.Publish)
	}
	if r.Delivery != nil {
		t.delivery(r.Delivery)
	}
	if len(r.Nodes) > 0 {
		t.nodes(r.Nodes, r.Server.WindowS)
	}
	t.server(r)
	t.client(r.Client)
	_, err := io.WriteString(w, t.b.String())
	return err
}

// table builds the text WriteTable writes.
type table struct {
	b strings.Builder
}

// row is one figure: its name in a column, then its value.
func (t *table) row(key, format string, args ...any) {
	fmt.Fprintf(&t.b, "  %-20s%s\n", key, fmt.Sprintf(format, args...))
}

// section starts a section after a blank line.
func (t *table) section(name string) { fmt.Fprintf(&t.b, "\n%s\n", name) }

// headline is the first lines: where, what was run, how the subscribers
// connected and the server's CPU per delivery.
func (t *table) headline(r *Report) {
	c := r.Config
	fmt.Fprintf(&t.b, "herald bench: %s (%s)\n", c.URL, serverKind(c))
	if c.Idle {
		t.row("run", "%d idle subscribers on %d topic(s), held %gs after %gs to settle", c.Subscribers, c.Topics, c.DurationS, c.WarmupS)
	} else {
		rate := fmt.Sprintf("%g msg/s", c.Rate)
		if c.Rate == 0 {
			rate = "max rate"
		}
		batch := ""
		if c.Batch > 1 {
			batch = fmt.Sprintf(" in batches of %d", c.Batch)
		}
		t.row("run", "%d subscribers on %d topic(s); %s from %d publishers%s; %gs measured after %gs warmup; %d-byte messages",
			c.Subscribers, c.Topics, rate, c.Publishers, batch, c.DurationS, c.WarmupS, c.Size)
		if c.Nodes > 1 {
			through := "node " + c.PublishNode
			if c.PublishNode == publishAllName {
				through = "every node in turn"
			}
			t.row("cluster", "subscribers round-robin over %d nodes; publishing through %s", c.Nodes, through)
		}
	}
	t.row("connect", "%d subscribers in %.2fs", r.Connect.Subscribers, r.Connect.Seconds)
	if us := r.Server.CPUPerDeliveryMicros; us != nil && !c.Idle {
		t.row("server cpu", "%.2f µs per delivery (server CPU over the window / events written to streams)", *us)
	}
}

// serverKind says which server was loaded: a remote one, or those bench
// started and on what.
func serverKind(c ReportConfig) string {
	switch {
	case c.Nodes > 1:
		return fmt.Sprintf("%d nodes on %s over %s, started by bench", c.Nodes, c.Store, c.Broadcast)
	case c.OwnServer && c.Store != "":
		return "started by bench, " + c.Store
	case c.OwnServer:
		return "started by bench"
	default:
		return "remote"
	}
}

func (t *table) publish(c ReportConfig, p *ReportPublish) {
	t.section("publish")
	target := ""
	if c.Rate > 0 {
		target = fmt.Sprintf(" of %g/s target", c.Rate)
	}
	t.row("accepted", "%d (%.1f/s%s)", p.Accepted, p.PerSecond, target)
	if c.Batch > 1 {
		t.row("requests", "%d (%.1f/s), each a batch of up to %d", p.Requests, float64(p.Requests)/c.DurationS, c.Batch)
	}
	t.row("errors", "%d", p.Errors)
	if p.FirstError != "" {
		t.row("first error", "%s", p.FirstError)
	}
	t.row("request latency", "p50 %s  p99 %s  max %s", fmtMs(p.Latency.P50), fmtMs(p.Latency.P99), fmtMs(p.Latency.Max))
	if p.BehindSchedule {
		t.row("note", "the publishers fell behind --rate (each waits for its 202); try more --publishers")
	}
}

func (t *table) delivery(d *ReportDelivery) {
	t.section("delivery")
	t.row("delivered/expected", "%d / %d (%.3f%%, %.0f/s)", d.Delivered, d.Expected, deliveredPercent(d.Delivered, d.Expected), d.PerSecond)
	t.row("lost", "%d", d.Lost)
	t.row("duplicates", "%d", d.Duplicates)
	t.row("out of order", "%d", d.OutOfOrder)
	t.row("lagged events", "%d (%d missed)", d.LaggedEvents, d.Missed)
	if d.Malformed > 0 {
		t.row("malformed frames", "%d", d.Malformed)
	}
	if d.Disconnected > 0 {
		t.row("disconnected early", "%d (first: %s)", d.Disconnected, d.FirstDisconnect)
	}
	t.row("end-to-end latency", "%s", fmtLatency(d.Latency))
	for _, split := range []struct {
		key string
		l   *LatencyMs
	}{{"  publishing node", d.LatencyPublishingNode}, {"  cross-node", d.LatencyCrossNode}} {
		if split.l != nil {
			t.row(split.key, "%s  (%d samples)", fmtLatency(*split.l), split.l.Samples)
		}
	}
}

// deliveredPercent is delivered as a percentage of expected; 100 when
// nothing was expected.
func deliveredPercent(delivered, expected uint64) float64 {
	if expected == 0 {
		return 100
	}
	return 100 * float64(delivered) / float64(expected)
}

// fmtLatency is the percentiles of l on one line.
func fmtLatency(l LatencyMs) string {
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p99.9 %s  max %s", fmtMs(l.P50), fmtMs(l.P90), fmtMs(l.P99), fmtMs(l.P999), fmtMs(l.Max))
}

// nodes is a line or two per node of a cluster, and their CPU together
// over the window of windowS seconds.
func (t *table) nodes(nodes []ReportNode, windowS float64) {
	t.section("nodes")
	var cpu float64
	cpuKnown := true
	for _, n := range nodes {
		key := fmt.Sprintf("node %d", n.Node)
		if n.Publishes {
			key += " (publishes)"
		}
		var parts []string
		if d := n.Delivery; d != nil {
			parts = append(parts, fmt.Sprintf("%d subscribers: %d / %d delivered (%.3f%%), %d lost, %d dup, %d out of order",
				d.Subscribers, d.Delivered, d.Expected, deliveredPercent(d.Delivered, d.Expected), d.Lost, d.Duplicates, d.OutOfOrder))
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
		t.row(key, "%s", strings.Join(parts, "; "))
		if s := n.Server; s.PGListenerReconnects != nil {
			t.row("", "postgres: %s", pgFigures(s))
		}
		if n.Server.MetricsError != "" {
			t.row("", "metrics unavailable: %s", n.Server.MetricsError)
		}
	}
	if cpuKnown && windowS > 0 {
		t.row("cpu, all nodes", "%.2fs over %.1fs (%.0f%% of one core)", cpu, windowS, 100*cpu/windowS)
	}
}

// server is the server section: node 0's on a cluster.
func (t *table) server(r *Report) {
	s := r.Server
	if len(r.Nodes) > 0 {
		t.section("server: node 0")
	} else {
		t.section("server")
	}
	if s.MetricsError != "" {
		t.row("metrics", "unavailable: %s", s.MetricsError)
	}
	if s.CPUSeconds != nil && s.CPUCores != nil {
		t.row("cpu", "%.2fs over %.1fs (%.0f%% of one core)", *s.CPUSeconds, s.WindowS, 100**s.CPUCores)
		if s.CPUPerPublishMicros != nil {
			t.row("cpu/publish", "%.1f µs per message published (its deliveries included)", *s.CPUPerPublishMicros)
		}
	} else {
		t.row("cpu", "n/a")
	}
	t.memory(s, r.Config.Subscribers)
	if !r.Config.Idle && s.EventsDelivered != nil {
		t.row("counters (window)", "published %s, delivered %s, lagged %s, slow disconnects %s",
			fmtCount(s.MessagesPublished), fmtCount(s.EventsDelivered), fmtCount(s.EventsLagged), fmtCount(s.SlowDisconnects))
	}
	if s.PublishCommitP50 != nil && s.PublishCommitP99 != nil {
		t.row("publish→commit", "p50 %s  p99 %s (server's histogram buckets)", s.PublishCommitP50, s.PublishCommitP99)
	}
	if s.PGListenerReconnects != nil {
		t.row("postgres", "%s", pgFigures(s))
	}
}

// memory is the server's memory lines, with a word of caution when there
// are too few subscribers for the per-connection figures.
func (t *table) memory(s ReportServer, subscribers int) {
	t.row("rss", "%s before subscribers, %s with them, %s at the end", fmtBytes(s.RSSBefore), fmtBytes(s.RSSWithSubscribers), fmtBytes(s.RSSAfter))
	noisy := ""
	if subscribers < 100 {
		noisy = " (too few subscribers for per-connection figures to mean much)"
	}
	t.row("rss/connection", "%s%s", fmtBytes(s.RSSPerConnection), noisy)
	t.row("heap in use", "%s before, %s with subscribers (%s/connection)", fmtBytes(s.HeapBefore), fmtBytes(s.HeapWithSubscribers), fmtBytes(s.HeapPerConnection))
	if s.StackPerConnection != nil {
		t.row("stacks in use", "%s with subscribers (%s/connection)", fmtBytes(s.StackWithSubscribers), fmtBytes(s.StackPerConnection))
	}
	if s.Goroutines != nil {
		t.row("goroutines", "%.0f with subscribers", *s.Goroutines)
	}
}

func (t *table) client(c ReportClient) {
	t.section("bench client")
	if c.CPUSeconds != nil {
		t.row("cpu", "%.2fs over the same window", *c.CPUSeconds)
	}
	if c.FileLimit > 0 {
		t.row("open file limit", "%d", c.FileLimit)
	}
}

// pgFigures is one line of a server's Postgres listener figures.
func pgFigures(s ReportServer) string {
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
