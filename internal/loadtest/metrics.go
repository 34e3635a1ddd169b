package loadtest

import (
	"bufio"
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

// BucketBound is a quantile read from a Prometheus histogram: the upper
// bound of the bucket holding it, or, when it lies in the +Inf bucket, the
// largest finite bound with Beyond set (JSON has no infinity).
type BucketBound struct {
	Ms     float64 `json:"ms"`
	Beyond bool    `json:"beyond_largest_bucket,omitempty"`
}

func (b BucketBound) String() string {
	if b.Beyond {
		return "> " + fmtMs(b.Ms)
	}
	return "≤ " + fmtMs(b.Ms)
}

// histogramQuantileDelta estimates the q-quantile of the Prometheus
// histogram name (in seconds) from the growth of its buckets between two
// scrapes. It is nil when the histogram is absent or saw nothing.
func histogramQuantileDelta(before, after promSnapshot, name string, q float64) *BucketBound {
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
			return &BucketBound{Ms: b.le * 1000}
		}
		if i == 0 {
			return nil
		}
		return &BucketBound{Ms: bs[i-1].le * 1000, Beyond: true}
	}
	return nil
}

// serverFigures works out the server section from the scrapes taken before
// the subscribers connected, once they all had, at the start of the measured
// window and at its end.
func serverFigures(before, withSubs, windowStart, after promSnapshot, subscribers int, window time.Duration) ReportServer {
	s := ReportServer{WindowS: window.Seconds()}
	if s.CPUSeconds = metricDelta(windowStart, after, metricCPU); s.CPUSeconds != nil && window > 0 {
		cores := *s.CPUSeconds / window.Seconds()
		s.CPUCores = &cores
	}
	s.RSSBefore = before.value(metricRSS)
	s.RSSWithSubscribers = withSubs.value(metricRSS)
	s.RSSAfter = after.value(metricRSS)
	s.RSSPerConnection = perConnection(metricDelta(before, withSubs, metricRSS), subscribers)
	s.HeapBefore = before.value(metricHeapInuse)
	s.HeapWithSubscribers = withSubs.value(metricHeapInuse)
	s.HeapPerConnection = perConnection(metricDelta(before, withSubs, metricHeapInuse), subscribers)
	s.StackWithSubscribers = withSubs.value(metricStackInuse)
	s.StackPerConnection = perConnection(metricDelta(before, withSubs, metricStackInuse), subscribers)
	s.Goroutines = withSubs.value(metricGoroutines)
	s.EventsDelivered = metricDelta(windowStart, after, metricDelivered)
	if s.CPUSeconds != nil && s.EventsDelivered != nil && *s.EventsDelivered > 0 {
		us := 1e6 * *s.CPUSeconds / *s.EventsDelivered
		s.CPUPerDeliveryMicros = &us
	}
	s.EventsLagged = metricDelta(windowStart, after, metricLagged)
	s.SlowDisconnects = metricDelta(windowStart, after, metricSlowDisconnects)
	s.MessagesPublished = metricDelta(windowStart, after, metricPublished)
	if s.CPUSeconds != nil && s.MessagesPublished != nil && *s.MessagesPublished > 0 {
		us := 1e6 * *s.CPUSeconds / *s.MessagesPublished
		s.CPUPerPublishMicros = &us
	}
	s.PublishCommitP50 = histogramQuantileDelta(windowStart, after, metricPublishDuration, .50)
	s.PublishCommitP99 = histogramQuantileDelta(windowStart, after, metricPublishDuration, .99)
	s.PGListenerReconnects = after.value(metricPGReconnects)
	s.PGQueueUsage = after.value(metricPGQueueUsage)
	s.PGNotificationsReceived = metricDelta(windowStart, after, metricPGReceived)
	s.PGHistoryReads = metricDelta(windowStart, after, metricPGHistoryReads)
	return s
}

// parsePromText reads the Prometheus text exposition format into a map from
// series (the metric name, with its labels as written: `x{le="0.1"}`) to
// value. Comments, blank lines and timestamps are skipped.
func parsePromText(r io.Reader) (map[string]float64, error) {
	out := make(map[string]float64)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		series, rest, err := splitSeries(line)
		if err != nil {
			return nil, fmt.Errorf("metrics line %d: %w", n, err)
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 || len(fields) > 2 {
			return nil, fmt.Errorf("metrics line %d: want a value and an optional timestamp after %s", n, series)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %d: %w", n, err)
		}
		out[series] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	return out, nil
}

// splitSeries splits a sample line after its series: the name, and the
// label set if there is one, whose quoted values may hold spaces, braces and
// escaped quotes.
func splitSeries(line string) (series, rest string, err error) {
	i := strings.IndexAny(line, "{ \t")
	if i < 0 {
		return "", "", fmt.Errorf("no value in %q", line)
	}
	if line[i] != '{' {
		return line[:i], line[i:], nil
	}
	quoted := false
	for j := i + 1; j < len(line); j++ {
		switch c := line[j]; {
		case quoted && c == '\\':
			j++ // skip the escaped character
		case c == '"':
			quoted = !quoted
		case !quoted && c == '}':
			return line[:j+1], line[j+1:], nil
		}
	}
	return "", "", fmt.Errorf("unterminated labels in %q", line)
}
