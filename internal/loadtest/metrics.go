package loadtest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
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

// promSnapshot is one scrape of /metrics: its metric families by name; nil
// when the scrape failed.
type promSnapshot map[string]*dto.MetricFamily

// scrapeAccept asks for the delimited protobuf format, cheaper than text for
// the server to encode and for bench to decode, and takes the text format
// from servers that only speak that: Prometheus's own order of the two.
const scrapeAccept = string(expfmt.FmtProtoDelim) + ";q=0.7," + string(expfmt.FmtText) + ";q=0.3"

// scrapeMetrics fetches and decodes base's /metrics.
func scrapeMetrics(ctx context.Context, hc *http.Client, base string) (promSnapshot, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/metrics", nil)
	if err != nil {
		return nil, fmt.Errorf("scrape metrics: %w", err)
	}
	req.Header.Set("Accept", scrapeAccept)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape metrics: %w", err)
	}
	defer func() { _ = resp.Body.Close() }() // read to the end or abandoned; nothing to report
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape metrics: %s", resp.Status)
	}
	m, err := decodeMetrics(resp.Body, resp.Header)
	if err != nil {
		return nil, fmt.Errorf("scrape metrics: %w", err)
	}
	return m, nil
}

// decodeMetrics reads an exposition in the format its Content-Type names
// (Prometheus text or delimited protobuf) with the Prometheus library. Any
// other Content-Type is refused rather than guessed at: an HTML page from a
// proxy is not metrics.
func decodeMetrics(r io.Reader, h http.Header) (promSnapshot, error) {
	format := expfmt.ResponseFormat(h)
	if format.FormatType() == expfmt.TypeUnknown {
		return nil, fmt.Errorf("content type %q is not a Prometheus exposition format", h.Get("Content-Type"))
	}
	dec := expfmt.NewDecoder(r, format)
	out := make(promSnapshot)
	for {
		mf := new(dto.MetricFamily)
		err := dec.Decode(mf)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("decode metrics: %w", err)
		}
		out[mf.GetName()] = mf
	}
}

// unlabelled returns the family's series without labels, or nil.
func (s promSnapshot) unlabelled(name string) *dto.Metric {
	for _, m := range s[name].GetMetric() {
		if len(m.GetLabel()) == 0 {
			return m
		}
	}
	return nil
}

// value returns the value of a counter, gauge or untyped metric's series
// without labels, or nil when it (or the snapshot) is absent.
func (s promSnapshot) value(name string) *float64 {
	m := s.unlabelled(name)
	var v float64
	switch {
	case m == nil:
		return nil
	case m.Counter != nil:
		v = m.Counter.GetValue()
	case m.Gauge != nil:
		v = m.Gauge.GetValue()
	case m.Untyped != nil:
		v = m.Untyped.GetValue()
	default:
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
	a := after.unlabelled(name).GetHistogram()
	if a == nil {
		return nil
	}
	b := before.unlabelled(name).GetHistogram() // nil: all zero
	grown := func(a, b *dto.Bucket) float64 { return bucketCount(a) - bucketCount(b) }
	// The text format writes the +Inf bucket, the protobuf one leaves it to
	// the sample count: the total is the count either way.
	total := sampleCount(a) - sampleCount(b)
	if total <= 0 {
		return nil
	}
	largest := math.NaN() // the largest finite bound below the quantile
	for _, ab := range sortedBuckets(a) {
		le := ab.GetUpperBound()
		if math.IsInf(le, 1) {
			break
		}
		if grown(ab, bucketAt(b, le)) >= q*total {
			return &BucketBound{Ms: le * 1000}
		}
		largest = le
	}
	if math.IsNaN(largest) {
		return nil // no finite bucket
	}
	return &BucketBound{Ms: largest * 1000, Beyond: true}
}

// sortedBuckets returns h's buckets by upper bound.
func sortedBuckets(h *dto.Histogram) []*dto.Bucket {
	return slices.SortedFunc(slices.Values(h.GetBucket()), func(a, b *dto.Bucket) int {
		return cmp.Compare(a.GetUpperBound(), b.GetUpperBound())
	})
}

// bucketAt returns h's bucket with upper bound le, or nil.
func bucketAt(h *dto.Histogram, le float64) *dto.Bucket {
	for _, b := range h.GetBucket() {
		if b.GetUpperBound() == le {
			return b
		}
	}
	return nil
}

// bucketCount and sampleCount read counts written as integers or, when any
// of a histogram's counts is fractional, as floats; nil reads as zero.
func bucketCount(b *dto.Bucket) float64 {
	if f := b.GetCumulativeCountFloat(); f != 0 {
		return f
	}
	return float64(b.GetCumulativeCount())
}

func sampleCount(h *dto.Histogram) float64 {
	if f := h.GetSampleCountFloat(); f != 0 {
		return f
	}
	return float64(h.GetSampleCount())
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
