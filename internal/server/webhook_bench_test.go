package server_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/heraldtest"
	"github.com/heraldhq/herald/internal/pgtest"
)

// countingReceiver is a webhook receiver that answers 204 and counts; done
// closes when it has counted want requests.
type countingReceiver struct {
	*httptest.Server
	n    atomic.Int64
	want atomic.Int64
	once sync.Once
	done chan struct{}
}

func newCountingReceiver(b *testing.B) *countingReceiver {
	b.Helper()
	r := &countingReceiver{done: make(chan struct{})}
	r.want.Store(-1)
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if r.n.Add(1) == r.want.Load() {
			r.once.Do(func() { close(r.done) })
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(r.Close)
	return r
}

// benchServer starts a server on SQLite or on a fresh Postgres database,
// with an HTTP client that keeps enough connections for parallel
// publishers.
func benchServer(b *testing.B, kind string, concurrency int) (*heraldtest.Server, heraldtest.App) {
	b.Helper()
	cfg := heraldtest.Config(b)
	if kind == "postgres" {
		cfg.DatabaseURL = pgtest.NewDatabase(b)
	}
	cfg.WebhookConcurrency = concurrency
	srv := heraldtest.Start(b, cfg)
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	b.Cleanup(tr.CloseIdleConnections)
	srv.UseHTTPClient(&http.Client{Transport: tr})
	return srv, srv.NewApp(b, "orders")
}

// BenchmarkPublishWithTriggers measures publish throughput over HTTP (8
// publishers on 2 cores here, each waiting for its 202) with 0, 1 and 10
// triggers on the topic, on both stores. With dispatch=on the node also
// delivers every webhook to a local receiver meanwhile; with dispatch=off it
// only enqueues them, which isolates what a trigger costs the publish.
//
//	go test -run '^$' -bench PublishWithTriggers -benchtime 3s ./internal/server
func BenchmarkPublishWithTriggers(b *testing.B) {
	for _, kind := range []string{"sqlite", "postgres"} {
		for _, dispatch := range []string{"on", "off"} {
			for _, triggers := range []int{0, 1, 10} {
				b.Run(fmt.Sprintf("%s/dispatch=%s/triggers=%d", kind, dispatch, triggers), func(b *testing.B) {
					concurrency := 16
					if dispatch == "off" {
						concurrency = -1
					}
					_, app := benchServer(b, kind, concurrency)
					rcv := newCountingReceiver(b)
					for range triggers {
						_, err := app.Full.CreateTrigger(b.Context(), app.ID, "orders", rcv.URL, "")
						require.NoError(b, err)
					}
					body := []byte(`{"order":42,"total":12.5,"items":["a","b","c"]}`)
					b.SetParallelism(4)
					b.ResetTimer()
					start := time.Now()
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if _, err := app.Full.Publish(b.Context(), app.ID, "orders", body); err != nil {
								b.Error(err)
								return
							}
						}
					})
					b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "publishes/s")
					b.ReportMetric(0, "ns/op")
				})
			}
		}
	}
}

// BenchmarkWebhookDelivery measures how fast one node delivers a backlog of
// webhooks to a local receiver (16 attempts at once, the default): b.N
// deliveries are queued by a node that delivers none, then a node that does
// starts on the same storage.
//
//	go test -run '^$' -bench WebhookDelivery -benchtime 5000x ./internal/server
func BenchmarkWebhookDelivery(b *testing.B) {
	for _, kind := range []string{"sqlite", "postgres"} {
		b.Run(kind, func(b *testing.B) {
			srv, app := benchServer(b, kind, -1)
			rcv := newCountingReceiver(b)
			_, err := app.Full.CreateTrigger(b.Context(), app.ID, "orders", rcv.URL, "")
			require.NoError(b, err)
			var wg sync.WaitGroup
			var next atomic.Int64
			for range 8 {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						_, err := app.Full.Publish(b.Context(), app.ID, "orders", []byte(`{"order":42}`))
						if err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			require.NoError(b, srv.Stop())
			rcv.want.Store(int64(b.N))

			cfg := srv.Config
			cfg.WebhookConcurrency = 16
			b.ResetTimer()
			start := time.Now()
			heraldtest.Start(b, cfg)
			select {
			case <-rcv.done:
			case <-time.After(5 * time.Minute):
				b.Fatalf("delivered %d of %d", rcv.n.Load(), b.N)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "webhooks/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}
