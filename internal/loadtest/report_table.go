package loadtest

import (
	"fmt"
	"io"
	"strings"
)

// writeBenchTable prints r for people: a section per concern, one figure
// per line.
func writeBenchTable(w io.Writer, r *Report) error {
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
			if c.PublishNode == publishAllName {
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
		split := func(key string, l *LatencyMs) {
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
