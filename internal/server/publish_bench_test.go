package server_test

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/client"
)

// BenchmarkPublishHTTP measures the whole single-publish path over HTTP, as
// `herald bench --max-rate --publishers 8 --subscribers 4` drives it: 8
// publishers, each waiting for its 202, and 4 SSE subscribers of the topic
// that read (and discard) every frame. With batch=N each request is a batch
// publish of N messages; publishes/s counts messages. For a profile of the
// server's side:
//
//	go test -run '^$' -bench 'PublishHTTP/sqlite/batch=1$' -cpuprofile cpu.out ./internal/server
func BenchmarkPublishHTTP(b *testing.B) {
	for _, kind := range []string{"sqlite", "postgres"} {
		for _, batch := range []int{1, 100} {
			b.Run(fmt.Sprintf("%s/batch=%d", kind, batch), func(b *testing.B) {
				srv, app := benchServer(b, kind, -1)
				for range 4 {
					req, err := http.NewRequestWithContext(b.Context(), http.MethodGet, srv.URL+"/v1/apps/"+app.ID+"/topics/orders/events", nil)
					require.NoError(b, err)
					req.Header.Set("Authorization", "Bearer "+app.SubscribeKey)
					resp, err := http.DefaultTransport.RoundTrip(req)
					require.NoError(b, err)
					b.Cleanup(func() { _ = resp.Body.Close() })
					go func() { _, _ = io.Copy(io.Discard, resp.Body) }()
				}
				require.Eventually(b, func() bool {
					ts, err := app.Full.ListTopics(b.Context(), app.ID)
					return err == nil && len(ts) == 1 && ts[0].Subscribers == 4
				}, 10*time.Second, 5*time.Millisecond)
				body := []byte(`{"order":42,"customer":"c-1234567","total":12.5,"currency":"EUR","items":[{"sku":"A-1","qty":2}],"note":"xxxxxxxxxxxxxxxxxxx"}`)
				msgs := make([]client.BatchMessage, batch)
				for i := range msgs {
					msgs[i] = client.BatchMessage{Topic: "orders", Message: body}
				}
				b.SetParallelism(4) // 8 publishers on 2 cores
				b.ResetTimer()
				start := time.Now()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						var err error
						if batch == 1 {
							_, err = app.Full.Publish(b.Context(), app.ID, "orders", body)
						} else {
							_, err = app.Full.PublishBatch(b.Context(), app.ID, msgs)
						}
						if err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N*batch)/time.Since(start).Seconds(), "publishes/s")
			})
		}
	}
}
