package loadtest

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParsePromText(t *testing.T) {
	t.Parallel()
	text := `# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 1.25

go_memstats_heap_inuse_bytes 4.194304e+06
herald_publish_duration_seconds_bucket{le="0.001"} 3
herald_publish_duration_seconds_bucket{le="+Inf"} 10
weird{path="/a b}",q="say \"hi\""} 2 1700000000000
nan_metric NaN
`
	m, err := parsePromText(strings.NewReader(text))
	require.NoError(t, err)
	require.Equal(t, 1.25, m["process_cpu_seconds_total"])
	require.Equal(t, 4194304.0, m["go_memstats_heap_inuse_bytes"])
	require.Equal(t, 3.0, m[`herald_publish_duration_seconds_bucket{le="0.001"}`])
	require.Equal(t, 10.0, m[`herald_publish_duration_seconds_bucket{le="+Inf"}`])
	require.Equal(t, 2.0, m[`weird{path="/a b}",q="say \"hi\""}`])
	require.Contains(t, m, "nan_metric")
	require.Len(t, m, 6)

	for _, bad := range []string{"lonely\n", "x{le=\"1\" 2\n", "x notanumber\n", "x 1 2 3\n"} {
		_, err := parsePromText(strings.NewReader(bad))
		require.Error(t, err, "%q", bad)
	}
}

func TestHistogramQuantileDelta(t *testing.T) {
	t.Parallel()
	const name = "h"
	b := func(le string) string { return name + `_bucket{le="` + le + `"}` }
	before := promSnapshot{b("0.001"): 5, b("0.01"): 5, b("0.1"): 5, b("+Inf"): 5}
	after := promSnapshot{b("0.001"): 95, b("0.01"): 104, b("0.1"): 104, b("+Inf"): 105}
	require.Equal(t, &BucketBound{Ms: 1}, histogramQuantileDelta(before, after, name, .5))
	require.Equal(t, &BucketBound{Ms: 10}, histogramQuantileDelta(before, after, name, .99))
	require.Equal(t, &BucketBound{Ms: 100, Beyond: true}, histogramQuantileDelta(before, after, name, 1),
		"the slowest was beyond the last finite bucket")
	require.Equal(t, "> 100ms", histogramQuantileDelta(before, after, name, 1).String())
	require.Equal(t, "≤ 1.00ms", histogramQuantileDelta(before, after, name, .5).String())
	require.Nil(t, histogramQuantileDelta(before, before, name, .99), "no observations in the window")
	require.Nil(t, histogramQuantileDelta(before, after, "absent", .99))
}

func TestServerFigures(t *testing.T) {
	t.Parallel()
	before := promSnapshot{metricRSS: 20e6, metricHeapInuse: 4e6, metricCPU: 1}
	withSubs := promSnapshot{metricRSS: 30e6, metricHeapInuse: 9e6, metricCPU: 1.5}
	start := promSnapshot{metricCPU: 2, metricDelivered: 100}
	after := promSnapshot{metricCPU: 4.5, metricDelivered: 1100, metricRSS: 31e6}
	s := serverFigures(before, withSubs, start, after, 1000, 5*time.Second)
	require.InDelta(t, 2.5, *s.CPUSeconds, 1e-9)
	require.InDelta(t, 0.5, *s.CPUCores, 1e-9)
	require.InDelta(t, 10_000, *s.RSSPerConnection, 1e-9)
	require.InDelta(t, 5_000, *s.HeapPerConnection, 1e-9)
	require.InDelta(t, 1000, *s.EventsDelivered, 1e-9)
	require.InDelta(t, 2500, *s.CPUPerDeliveryMicros, 1e-9, "2.5 s over 1000 deliveries")
	require.Nil(t, s.EventsLagged, "absent from the scrapes")
	require.Nil(t, s.CPUPerPublishMicros, "nothing published")
	start[metricPublished], after[metricPublished] = 100, 600
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
	start := promSnapshot{metricCPU: 10, metricPublished: 1000, metricDelivered: 4000}
	after := promSnapshot{metricCPU: 10.5, metricPublished: 11_000, metricDelivered: 44_000}
	s := serverFigures(nil, nil, start, after, 4, 2*time.Second)
	require.InDelta(t, 50, *s.CPUPerPublishMicros, 1e-9, "0.5 s over 10,000 publishes")
	require.InDelta(t, 12.5, *s.CPUPerDeliveryMicros, 1e-9, "0.5 s over 40,000 deliveries")
	require.InDelta(t, 0.25, *s.CPUCores, 1e-9, "0.5 s of CPU in 2 s")
	require.InDelta(t, 10_000, *s.MessagesPublished, 1e-9)

	idle := promSnapshot{metricCPU: 10.5, metricPublished: 1000, metricDelivered: 4000}
	s = serverFigures(nil, nil, start, idle, 4, 2*time.Second)
	require.Nil(t, s.CPUPerPublishMicros, "nothing published: no per-publish cost")
	require.Nil(t, s.CPUPerDeliveryMicros, "nothing delivered: no per-delivery cost")
	require.NotNil(t, s.CPUSeconds)

	s = serverFigures(nil, nil, start, after, 4, 0)
	require.Nil(t, s.CPUCores, "no window to divide by")
	require.NotNil(t, s.CPUPerPublishMicros)

	noCPU := promSnapshot{metricPublished: 11_000, metricDelivered: 44_000}
	s = serverFigures(nil, nil, start, noCPU, 4, 2*time.Second)
	require.Nil(t, s.CPUSeconds)
	require.Nil(t, s.CPUPerPublishMicros, "a server without process metrics")
	require.Nil(t, s.CPUPerDeliveryMicros)
}

func TestMetricDeltaAndPerConnection(t *testing.T) {
	t.Parallel()
	a, b := promSnapshot{"x": 5}, promSnapshot{"x": 12, "y": 1}
	require.InDelta(t, 7, *metricDelta(a, b, "x"), 1e-9)
	require.Nil(t, metricDelta(a, b, "y"), "absent before")
	require.Nil(t, metricDelta(nil, b, "x"), "a failed scrape")
	d := -4096.0
	require.InDelta(t, -1024, *perConnection(&d, 4), 1e-9, "memory may shrink")
	require.Nil(t, perConnection(&d, 0))
	require.Nil(t, perConnection(nil, 4))
}
