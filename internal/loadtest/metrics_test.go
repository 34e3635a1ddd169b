package loadtest

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/heraldtest"
)

// textHeader is the header of a text exposition, as promhttp sends it.
func textHeader() http.Header {
	return http.Header{"Content-Type": {string(expfmt.FmtText)}}
}

// parseText decodes a text exposition as a scrape that received it would.
func parseText(t *testing.T, text string) promSnapshot {
	t.Helper()
	s, err := decodeMetrics(strings.NewReader(text), textHeader())
	require.NoError(t, err)
	return s
}

// values is a snapshot of untyped series without labels.
func values(kv map[string]float64) promSnapshot {
	s := make(promSnapshot, len(kv))
	for name, v := range kv {
		s[name] = &dto.MetricFamily{
			Name: &name, Type: dto.MetricType_UNTYPED.Enum(),
			Metric: []*dto.Metric{{Untyped: &dto.Untyped{Value: &v}}},
		}
	}
	return s
}

func TestDecodeMetricsText(t *testing.T) {
	t.Parallel()
	m := parseText(t, `# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 1.25

# TYPE go_memstats_heap_inuse_bytes gauge
go_memstats_heap_inuse_bytes 4.194304e+06
herald_limit_refusals_total{limit="rate"} 7
weird{path="/a b}",q="say \"hi\""} 2 1700000000000
nan_metric NaN
`)
	require.Equal(t, 1.25, *m.value("process_cpu_seconds_total"))
	require.Equal(t, 4194304.0, *m.value("go_memstats_heap_inuse_bytes"))
	require.Nil(t, m.value("herald_limit_refusals_total"), "only labelled series: no figure without labels")
	require.Nil(t, m.value("weird"))
	w := m["weird"].GetMetric()
	require.Len(t, w, 1)
	require.Equal(t, 2.0, w[0].GetUntyped().GetValue())
	require.Equal(t, `say "hi"`, w[0].GetLabel()[1].GetValue(), "escaped quotes in a label value")
	require.True(t, math.IsNaN(*m.value("nan_metric")))
	require.Nil(t, m.value("absent"))
	require.Nil(t, promSnapshot(nil).value(metricCPU), "a failed scrape")
	require.Len(t, m, 5)

	for _, bad := range []string{"lonely\n", "x{le=\"1\" 2\n", "x notanumber\n", "x 1 2 3\n", "404 page not found\n"} {
		_, err := decodeMetrics(strings.NewReader(bad), textHeader())
		require.ErrorContains(t, err, "decode metrics: text format parsing error in line 1", "%q", bad)
	}
}

// TestDecodeMetricsNotPrometheus checks that an answer in a format that
// is not Prometheus's is refused by name, not parsed line by line.
func TestDecodeMetricsNotPrometheus(t *testing.T) {
	t.Parallel()
	for _, ct := range []string{"text/html; charset=utf-8", "application/json", "", "text/plain; version=9.9.9"} {
		_, err := decodeMetrics(strings.NewReader("<html>hello</html>"), http.Header{"Content-Type": {ct}})
		require.ErrorContains(t, err, "is not a Prometheus exposition format", "%q", ct)
	}

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, "<html><body>a login page</body></html>")
	}))
	t.Cleanup(srv.Close)
	_, err := scrapeMetrics(t.Context(), srv.Client(), srv.URL)
	require.EqualError(t, err, `scrape metrics: content type "text/html; charset=utf-8" is not a Prometheus exposition format`)
}

// histogramText is a histogram h as the text format writes it.
func histogramText(b1, b2, b3, inf float64) string {
	return fmt.Sprintf(`# TYPE h histogram
h_bucket{le="0.001"} %g
h_bucket{le="0.01"} %g
h_bucket{le="0.1"} %g
h_bucket{le="+Inf"} %g
h_sum 1
h_count %g
`, b1, b2, b3, inf, inf)
}

func TestHistogramQuantileDelta(t *testing.T) {
	t.Parallel()
	const name = "h"
	before := parseText(t, histogramText(5, 5, 5, 5))
	after := parseText(t, histogramText(95, 104, 104, 105))
	check := func(t *testing.T, before, after promSnapshot) {
		t.Helper()
		require.Equal(t, &BucketBound{Ms: 1}, histogramQuantileDelta(before, after, name, .5))
		require.Equal(t, &BucketBound{Ms: 10}, histogramQuantileDelta(before, after, name, .99))
		require.Equal(t, &BucketBound{Ms: 100, Beyond: true}, histogramQuantileDelta(before, after, name, 1),
			"the slowest was beyond the last finite bucket")
		require.Equal(t, "> 100ms", histogramQuantileDelta(before, after, name, 1).String())
		require.Equal(t, "≤ 1.00ms", histogramQuantileDelta(before, after, name, .5).String())
		require.Nil(t, histogramQuantileDelta(before, before, name, .99), "no observations in the window")
		require.Nil(t, histogramQuantileDelta(before, after, "absent", .99))
	}
	check(t, before, after)
	require.Equal(t, &BucketBound{Ms: 1}, histogramQuantileDelta(nil, after, name, .5), "no scrape before: from zero")

	// The protobuf format has no +Inf bucket: the sample count stands for it.
	for _, s := range []promSnapshot{before, after} {
		h := s[name].GetMetric()[0].GetHistogram()
		require.True(t, math.IsInf(h.Bucket[len(h.Bucket)-1].GetUpperBound(), 1))
		h.Bucket = h.Bucket[:len(h.Bucket)-1]
	}
	check(t, before, after)

	// Fractional counts come back as floats.
	require.Equal(t, &BucketBound{Ms: 10}, histogramQuantileDelta(nil, parseText(t, histogramText(0.5, 2, 2, 2.5)), name, .75))
}

func TestServerFigures(t *testing.T) {
	t.Parallel()
	before := values(map[string]float64{metricRSS: 20e6, metricHeapInuse: 4e6, metricCPU: 1})
	withSubs := values(map[string]float64{metricRSS: 30e6, metricHeapInuse: 9e6, metricCPU: 1.5})
	start := values(map[string]float64{metricCPU: 2, metricDelivered: 100})
	after := values(map[string]float64{metricCPU: 4.5, metricDelivered: 1100, metricRSS: 31e6})
	s := serverFigures(before, withSubs, start, after, 1000, 5*time.Second)
	require.InDelta(t, 2.5, *s.CPUSeconds, 1e-9)
	require.InDelta(t, 0.5, *s.CPUCores, 1e-9)
	require.InDelta(t, 10_000, *s.RSSPerConnection, 1e-9)
	require.InDelta(t, 5_000, *s.HeapPerConnection, 1e-9)
	require.InDelta(t, 1000, *s.EventsDelivered, 1e-9)
	require.InDelta(t, 2500, *s.CPUPerDeliveryMicros, 1e-9, "2.5 s over 1000 deliveries")
	require.Nil(t, s.EventsLagged, "absent from the scrapes")
	require.Nil(t, s.CPUPerPublishMicros, "nothing published")
	start = values(map[string]float64{metricCPU: 2, metricDelivered: 100, metricPublished: 100})
	after = values(map[string]float64{metricCPU: 4.5, metricDelivered: 1100, metricRSS: 31e6, metricPublished: 600})
	s = serverFigures(before, withSubs, start, after, 1000, 5*time.Second)
	require.InDelta(t, 5000, *s.CPUPerPublishMicros, 1e-9, "2.5 s of CPU over 500 publishes")

	// A failed scrape is a nil snapshot: the figures are absent, not wrong.
	s = serverFigures(nil, withSubs, nil, after, 1000, time.Second)
	require.Nil(t, s.CPUSeconds)
	require.Nil(t, s.RSSPerConnection)
	require.NotNil(t, s.RSSWithSubscribers)
}

// TestServerFiguresPerPublishAndDelivery checks the CPU cost figures
// against hand-worked numbers, and that each is left out, not made up,
// when what it divides by is missing or zero.
func TestServerFiguresPerPublishAndDelivery(t *testing.T) {
	t.Parallel()
	start := values(map[string]float64{metricCPU: 10, metricPublished: 1000, metricDelivered: 4000})
	after := values(map[string]float64{metricCPU: 10.5, metricPublished: 11_000, metricDelivered: 44_000})
	s := serverFigures(nil, nil, start, after, 4, 2*time.Second)
	require.InDelta(t, 50, *s.CPUPerPublishMicros, 1e-9, "0.5 s over 10,000 publishes")
	require.InDelta(t, 12.5, *s.CPUPerDeliveryMicros, 1e-9, "0.5 s over 40,000 deliveries")
	require.InDelta(t, 0.25, *s.CPUCores, 1e-9, "0.5 s of CPU in 2 s")
	require.InDelta(t, 10_000, *s.MessagesPublished, 1e-9)

	idle := values(map[string]float64{metricCPU: 10.5, metricPublished: 1000, metricDelivered: 4000})
	s = serverFigures(nil, nil, start, idle, 4, 2*time.Second)
	require.Nil(t, s.CPUPerPublishMicros, "nothing published: no per-publish cost")
	require.Nil(t, s.CPUPerDeliveryMicros, "nothing delivered: no per-delivery cost")
	require.NotNil(t, s.CPUSeconds)

	s = serverFigures(nil, nil, start, after, 4, 0)
	require.Nil(t, s.CPUCores, "no window to divide by")
	require.NotNil(t, s.CPUPerPublishMicros)

	noCPU := values(map[string]float64{metricPublished: 11_000, metricDelivered: 44_000})
	s = serverFigures(nil, nil, start, noCPU, 4, 2*time.Second)
	require.Nil(t, s.CPUSeconds)
	require.Nil(t, s.CPUPerPublishMicros, "a server without process metrics")
	require.Nil(t, s.CPUPerDeliveryMicros)
}

func TestMetricDeltaAndPerConnection(t *testing.T) {
	t.Parallel()
	a, b := values(map[string]float64{"x": 5}), values(map[string]float64{"x": 12, "y": 1})
	require.InDelta(t, 7, *metricDelta(a, b, "x"), 1e-9)
	require.Nil(t, metricDelta(a, b, "y"), "absent before")
	require.Nil(t, metricDelta(nil, b, "x"), "a failed scrape")
	d := -4096.0
	require.InDelta(t, -1024, *perConnection(&d, 4), 1e-9, "memory may shrink")
	require.Nil(t, perConnection(&d, 0))
	require.Nil(t, perConnection(nil, 4))
}

// TestScrapeRealServer reads the /metrics of a running Herald server, in
// the format the scrape negotiates and in the text format, and checks the
// figures the report takes from them against what was done to the server.
func TestScrapeRealServer(t *testing.T) {
	t.Parallel()
	srv := heraldtest.StartDefault(t)
	app := srv.NewApp(t, "t")
	ctx := t.Context()
	before, err := scrapeMetrics(ctx, srv.HTTP, srv.URL)
	require.NoError(t, err)
	const published = 25
	for i := range published {
		_, err := app.Full.Publish(ctx, app.ID, "t", fmt.Appendf(nil, `{"n":%d}`, i))
		require.NoError(t, err)
	}
	after, err := scrapeMetrics(ctx, srv.HTTP, srv.URL)
	require.NoError(t, err)
	require.Equal(t, dto.MetricType_HISTOGRAM, after[metricPublishDuration].GetType())

	s := serverFigures(before, before, before, after, 1, time.Second)
	require.InDelta(t, published, *s.MessagesPublished, 0)
	require.InDelta(t, 0, *s.EventsDelivered, 0, "nobody subscribed")
	require.NotNil(t, s.CPUSeconds)
	require.GreaterOrEqual(t, *s.CPUSeconds, 0.0)
	require.NotNil(t, s.CPUPerPublishMicros)
	require.Positive(t, *s.RSSBefore)
	require.Positive(t, *s.HeapBefore)
	require.Positive(t, *s.StackWithSubscribers)
	require.GreaterOrEqual(t, *s.Goroutines, 1.0)
	require.NotNil(t, s.PublishCommitP50)
	require.NotNil(t, s.PublishCommitP99)
	require.Positive(t, s.PublishCommitP50.Ms)
	require.GreaterOrEqual(t, s.PublishCommitP99.Ms, s.PublishCommitP50.Ms)
	require.Nil(t, s.PGQueueUsage, "SQLite: no Postgres listener")

	get := func(t *testing.T, accept string) *http.Response {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/metrics", nil)
		require.NoError(t, err)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := srv.HTTP.Do(req)
		require.NoError(t, err)
		t.Cleanup(func() { _ = resp.Body.Close() })
		return resp
	}
	require.Equal(t, expfmt.TypeProtoDelim, expfmt.ResponseFormat(get(t, scrapeAccept).Header).FormatType(),
		"the scrape above read protobuf")

	// The text format, as promhttp serves it to a client that asks for no
	// other, gives the same counts and the same quantiles.
	resp := get(t, "")
	require.Equal(t, expfmt.TypeTextPlain, expfmt.ResponseFormat(resp.Header).FormatType())
	text, err := decodeMetrics(resp.Body, resp.Header)
	require.NoError(t, err)
	require.Equal(t, *after.value(metricPublished), *text.value(metricPublished))
	for _, q := range []float64{.5, .99, 1} {
		require.Equal(t, histogramQuantileDelta(before, after, metricPublishDuration, q),
			histogramQuantileDelta(before, text, metricPublishDuration, q), "q=%g", q)
	}
}
