package loadtest

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestHistBucket(t *testing.T) {
	t.Parallel()
	prev := -1
	for _, v := range []uint64{0, 1, 63, 64, 127, 128, 129, 255, 256, 1000, 12345, 1 << 20, 1<<20 + 7, 1e9, 1e12, 1 << 62, 1<<63 - 1, 1<<64 - 1} {
		i := histBucket(v)
		require.Less(t, i, histBuckets, "v=%d", v)
		require.GreaterOrEqual(t, i, prev, "buckets grow with the value")
		prev = i
		lo, hi := histBucketRange(i)
		require.LessOrEqual(t, lo, v, "v=%d", v)
		require.GreaterOrEqual(t, hi, v, "v=%d", v)
		require.LessOrEqual(t, hi-lo, v/64, "a bucket is at most 1/64 of its value wide (v=%d)", v)
	}
	// Buckets tile the number line: each starts right after the one before.
	for i := 1; i < 2000; i++ {
		_, prevHi := histBucketRange(i - 1)
		lo, _ := histBucketRange(i)
		require.Equal(t, prevHi+1, lo, "bucket %d", i)
	}
}

func TestLatencyHistogram(t *testing.T) {
	t.Parallel()

	t.Run("Empty", func(t *testing.T) {
		t.Parallel()
		var h latencyHistogram
		require.Zero(t, h.Count())
		require.Zero(t, h.Quantile(.99))
		require.Zero(t, h.Mean())
		require.Zero(t, h.Max())
	})

	t.Run("Uniform", func(t *testing.T) {
		t.Parallel()
		var h latencyHistogram
		// 1µs … 100ms in 1µs steps, shuffled.
		vals := make([]time.Duration, 100_000)
		for i := range vals {
			vals[i] = time.Duration(i+1) * time.Microsecond
		}
		rand.Shuffle(len(vals), func(i, j int) { vals[i], vals[j] = vals[j], vals[i] })
		for _, v := range vals {
			h.Record(v)
		}
		require.EqualValues(t, 100_000, h.Count())
		require.Equal(t, 100*time.Millisecond, h.Max())
		require.InDelta(t, float64(50_000_500*time.Nanosecond), float64(h.Mean()), 1)
		for _, q := range []float64{.5, .9, .99, .999, 1} {
			want := q * float64(100*time.Millisecond)
			require.InEpsilon(t, want, float64(h.Quantile(q)), 0.01, "q=%v", q)
		}
	})

	t.Run("ClampsNegativeAndCapsAtMax", func(t *testing.T) {
		t.Parallel()
		var h latencyHistogram
		h.Record(-time.Second)
		require.Zero(t, h.Quantile(1))
		h.Record(1000003) // mid-bucket is above the sample; Max caps it
		require.Equal(t, time.Duration(1000003), h.Quantile(1))
	})

	t.Run("ConcurrentAndMerge", func(t *testing.T) {
		t.Parallel()
		var a, b latencyHistogram
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 1000 {
					a.Record(time.Duration(g*1000+i) * time.Microsecond)
				}
			})
		}
		wg.Wait()
		b.Record(time.Hour)
		b.Merge(&a)
		require.EqualValues(t, 8001, b.Count())
		require.Equal(t, time.Hour, b.Max())
		require.InEpsilon(t, float64(4*time.Millisecond), float64(b.Quantile(.5)), 0.01)
	})
}

func TestSeqSet(t *testing.T) {
	t.Parallel()
	var s seqSet
	require.False(t, s.Has(1))
	require.True(t, s.Add(1))
	require.False(t, s.Add(1), "second add is not new")
	require.True(t, s.Add(64))
	require.True(t, s.Add(10_000), "grows")
	require.True(t, s.Has(10_000))
	require.False(t, s.Has(9_999))
	require.False(t, s.Has(1<<40), "far beyond the end")
	require.EqualValues(t, 3, s.Len())

	var o seqSet
	o.Add(1)
	o.Add(2)
	o.Add(10_000)
	require.EqualValues(t, 2, s.IntersectLen(&o))
	require.EqualValues(t, 2, o.IntersectLen(&s))
	var empty seqSet
	require.Zero(t, empty.IntersectLen(&s))
}

func TestDeliveryTracker(t *testing.T) {
	t.Parallel()
	var tr deliveryTracker
	require.True(t, tr.Observe(2, 10), "seqs may arrive out of seq order: publishers race")
	require.True(t, tr.Observe(1, 11))
	require.False(t, tr.Observe(1, 12), "a duplicate seq")
	require.True(t, tr.Observe(3, 12), "an id that does not grow")
	require.True(t, tr.Observe(4, 5), "an id that goes back")
	require.EqualValues(t, 5, tr.messages)
	require.EqualValues(t, 1, tr.duplicates)
	require.EqualValues(t, 2, tr.outOfOrder)
	require.EqualValues(t, 4, tr.seen.Len())
	require.EqualValues(t, 12, tr.lastID)
}

func TestPublishLedger(t *testing.T) {
	t.Parallel()
	l := &publishLedger{topics: 3}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for n := uint64(g); n < 400; n += 4 {
				switch {
				case n < 30:
					l.Set(n, jobAccepted) // warmup
				case n%50 == 0:
					l.Set(n, jobFailed)
				default:
					l.Set(n, jobAcceptedMeasured)
				}
			}
		})
	}
	wg.Wait()
	sets := l.Measured()
	require.Len(t, sets, 3)
	var total uint64
	for _, s := range sets {
		total += s.Len()
	}
	require.EqualValues(t, 400-30-7, total) // 50, 100, … 350 failed
	// Job 31 is topic 1, seq 11; job 30 (seq 11 of topic 0) is measured,
	// job 29 (seq 10 of topic 2) is warmup, job 50 failed.
	require.True(t, sets[1].Has(11))
	require.True(t, sets[0].Has(11))
	require.False(t, sets[2].Has(10))
	ti, seq := jobTopicSeq(50, 3)
	require.False(t, sets[ti].Has(seq))
}

func TestDueJobs(t *testing.T) {
	t.Parallel()
	require.Zero(t, dueJobs(0, 100))
	require.Zero(t, dueJobs(-time.Second, 100))
	require.EqualValues(t, 1, dueJobs(10*time.Millisecond, 100))
	require.EqualValues(t, 1000, dueJobs(10*time.Second, 100))
	require.EqualValues(t, 5, dueJobs(10*time.Second, 0.5))
}

// TestMeasureWindowCountsBySchedule checks that with a rate a message
// counts by its place in the schedule, not by when it went out: warmup
// jobs sent late, inside the window, are not counted, so a window never
// holds more than the rate allows.
func TestMeasureWindowCountsBySchedule(t *testing.T) {
	t.Parallel()
	w := &measureWindow{}
	w.start.Store(1000)
	w.end.Store(2000)
	require.True(t, w.Counts(7, 1500), "no schedule: by send time")
	require.False(t, w.Counts(7, 2000))

	w.setSchedule(dueJobs(time.Second, 50), dueJobs(2*time.Second, 50))
	var counted int
	for n := range uint64(200) {
		if w.Counts(n, 1500) { // all sent inside the window
			counted++
		}
	}
	require.Equal(t, 50, counted, "1s at 50/s")
	require.False(t, w.Counts(49, 1500), "a warmup job sent late")
	require.True(t, w.Counts(50, 2500), "a window job sent late")

	for _, topics := range []int{1, 3} {
		for n := range uint64(20) {
			ti, seq := jobTopicSeq(n, topics)
			require.Equal(t, n, jobNumber(ti, seq, topics))
		}
	}
}

func TestBuildPayload(t *testing.T) {
	t.Parallel()
	now := time.Now().UnixNano()
	for _, size := range []int{60, 64, 100, 128, 1000, 4096} {
		for _, seq := range []uint64{1, 9, 10, 12345, 999_999_999} {
			p := buildPayload([]byte("junk"), seq, now, size)
			p = p[len("junk"):]
			require.Len(t, p, size, "size=%d seq=%d", size, seq)
			var m struct {
				Seq uint64 `json:"seq"`
				T   int64  `json:"t"`
				Pad string `json:"pad"`
			}
			require.NoError(t, json.Unmarshal(p, &m), "%s", p)
			require.Equal(t, seq, m.Seq)
			require.Equal(t, now, m.T)
			require.Equal(t, strings.Repeat("x", len(m.Pad)), m.Pad)
		}
	}
	// Too small for the fields: the message goes out unpadded, still JSON.
	p := buildPayload(nil, 7, now, 1)
	require.True(t, json.Valid(p))
	require.Contains(t, string(p), `"pad":""`)
}

func TestParseDelivery(t *testing.T) {
	t.Parallel()
	now := time.Now().UnixNano()
	msg := buildPayload(nil, 42, now, 128)
	data := `{"id":"7","topic":"bench-0","message":` + string(msg) + `,"published_at":"2026-11-28T03:25:12.123456Z"}`
	seq, sent, err := parseDelivery(data)
	require.NoError(t, err)
	require.EqualValues(t, 42, seq)
	require.Equal(t, now, sent)

	// Another key order, or spacing, takes the slow path to the same answer.
	seq, sent, err = parseDelivery(`{"message": {"t": 5, "pad": "", "seq": 3}, "id": "1"}`)
	require.NoError(t, err)
	require.EqualValues(t, 3, seq)
	require.EqualValues(t, 5, sent)
	seq, sent, err = parseDelivery(`{"message":{"seq":8,"t":9}}`)
	require.NoError(t, err)
	require.EqualValues(t, 8, seq)
	require.EqualValues(t, 9, sent)

	for _, bad := range []string{``, `{`, `{"message":{"n":1}}`, `{"message":{"seq":1}}`, `{"message":{"seq":"x","t":1}}`, `{"id":"1"}`} {
		_, _, err := parseDelivery(bad)
		require.Error(t, err, "%q", bad)
	}
}

func TestParseLagged(t *testing.T) {
	t.Parallel()
	n, err := parseLagged(`{"missed":17,"topic":"bench-0"}`)
	require.NoError(t, err)
	require.EqualValues(t, 17, n)
	n, err = parseLagged(`{"missed": 3}`)
	require.NoError(t, err)
	require.EqualValues(t, 3, n)
	for _, bad := range []string{`{}`, `{"missed":x}`, `{"missed":1`} {
		_, err := parseLagged(bad)
		require.Error(t, err, "%q", bad)
	}
}

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

func TestParseReadyLine(t *testing.T) {
	t.Parallel()
	addr, ok := parseReadyLine([]byte(`{"time":"2026-11-28T03:25:12Z","level":"INFO","msg":"herald ready","addr":"http://127.0.0.1:41234","store":"sqlite"}`))
	require.True(t, ok)
	require.Equal(t, "http://127.0.0.1:41234", addr)
	for _, line := range []string{`{"msg":"starting"}`, `{"msg":"herald ready"}`, `time=x msg="herald ready"`, ``} {
		_, ok := parseReadyLine([]byte(line))
		require.False(t, ok, "%q", line)
	}
}

func TestReadyWatcher(t *testing.T) {
	t.Parallel()
	w := newReadyWatcher()
	log := `{"msg":"opening store"}` + "\n" + `{"msg":"herald ready","addr":"http://127.0.0.1:9"}` + "\n" + `{"msg":"tail"`
	// Written in pieces that split lines, as a pipe may.
	for chunk := range slicesChunk([]byte(log), 7) {
		n, err := w.Write(chunk)
		require.NoError(t, err)
		require.Equal(t, len(chunk), n)
	}
	select {
	case <-w.ready:
	default:
		t.Fatal("ready not signalled")
	}
	require.Equal(t, "http://127.0.0.1:9", w.Addr())
	require.Contains(t, w.Tail(), "opening store")
	require.True(t, strings.HasSuffix(w.Tail(), `{"msg":"tail"`))
	_, err := w.Write([]byte(`{"msg":"herald ready","addr":"http://other"}` + "\n"))
	require.NoError(t, err, "a second ready line is harmless")
	require.Equal(t, "http://127.0.0.1:9", w.Addr())
}

// slicesChunk yields b in pieces of n bytes.
func slicesChunk(b []byte, n int) func(func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for len(b) > 0 {
			k := min(n, len(b))
			if !yield(b[:k]) {
				return
			}
			b = b[k:]
		}
	}
}

func TestBenchRoute(t *testing.T) {
	t.Parallel()
	r := nodeRoute{nodes: 3, topics: 2, publishNode: 0}
	// Subscribers 0 and 1 read topics 0 and 1 on node 0, 2 and 3 on node 1…
	var nodes []int
	for i := range 8 {
		nodes = append(nodes, r.subscriberNode(i))
	}
	require.Equal(t, []int{0, 0, 1, 1, 2, 2, 0, 0}, nodes)
	require.Equal(t, 0, r.publisherNode(5))
	require.False(t, r.crossNode(1, 5))
	require.True(t, r.crossNode(2, 5))

	all := nodeRoute{nodes: 3, topics: 1, publishNode: -1}
	require.Equal(t, 0, all.publisherNode(1))
	require.Equal(t, 1, all.publisherNode(2))
	require.Equal(t, 2, all.publisherNode(3))
	require.Equal(t, 0, all.publisherNode(4))
	require.False(t, all.crossNode(1, 2), "subscriber 1 is on node 1, where seq 2 was published")
	require.True(t, all.crossNode(1, 3))

	one := nodeRoute{nodes: 1, topics: 4, publishNode: 0}
	for i := range 10 {
		require.False(t, one.crossNode(i, uint64(i+1)), "one node: nothing crosses")
	}

	for _, tc := range []struct {
		in    string
		nodes int
		want  int
		valid bool
	}{{"0", 1, 0, true}, {"all", 1, -1, true}, {"2", 3, 2, true}, {"3", 3, 0, false}, {"-1", 3, 0, false}, {"", 2, 0, false}} {
		n, err := ParsePublishNode(tc.in, tc.nodes)
		if !tc.valid {
			require.Error(t, err, "%q of %d", tc.in, tc.nodes)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, tc.want, n)
	}
}

func TestWriteBenchTable(t *testing.T) {
	t.Parallel()
	cpu, cores, rss := 1.5, 0.15, 30e6
	r := &Report{
		Config:   ReportConfig{URL: "http://x", OwnServer: true, Subscribers: 10, Topics: 1, Rate: 100, Publishers: 4, Size: 128, DurationS: 10, WarmupS: 1},
		Publish:  &ReportPublish{Accepted: 1000, PerSecond: 100},
		Delivery: &ReportDelivery{Expected: 10000, Delivered: 9990, Lost: 10},
		Server:   ReportServer{WindowS: 10, CPUSeconds: &cpu, CPUCores: &cores, RSSWithSubscribers: &rss},
	}
	var out bytes.Buffer
	require.NoError(t, r.WriteTable(&out))
	s := out.String()
	require.Contains(t, s, "9990 / 10000 (99.900%")
	require.Contains(t, s, "15% of one core")
	require.Contains(t, s, "n/a before subscribers, 28.6 MiB with them")
	require.Contains(t, s, "of 100/s target")
	for line := range strings.Lines(s) {
		require.Equal(t, strings.TrimRight(line, " \n")+"\n", line, "no trailing spaces")
	}
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
		{Node: 0, Publishes: true, Server: pg, Delivery: &ReportNodeDelivery{Subscribers: 5, Expected: 5000, Delivered: 5000}},
		{Node: 1, Server: pg, Delivery: &ReportNodeDelivery{Subscribers: 5, Expected: 5000, Delivered: 4990, Lost: 10}},
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
	for line := range strings.Lines(s) {
		require.Equal(t, strings.TrimRight(line, " \n")+"\n", line, "no trailing spaces")
	}
}
