package cluster_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"syscall"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/pgtest"
)

// TestWebhookSurvivesSIGKILLAfterAccept publishes to a topic with a trigger
// on a node that delivers no webhooks, kills it with SIGKILL right after the
// last 202, and starts a node that does on the same storage: every message
// acknowledged is delivered, signed, once. On SQLite the new node has the
// same data directory; on Postgres it is another node of the database.
func TestWebhookSurvivesSIGKILLAfterAccept(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			db, dir := "", t.TempDir()
			if kind == "postgres" {
				db = pgtest.NewDatabase(t)
			}
			flags := func(concurrency int) []string {
				return []string{"--data-dir", dir, "--webhook-allow-nets", "127.0.0.0/8", "--webhook-concurrency", fmt.Sprint(concurrency)}
			}
			var (
				mu     sync.Mutex
				hits   = map[string]http.Header{}
				bodies = map[string][]byte{}
			)
			got := make(chan struct{}, 1000)
			rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				mu.Lock()
				hits[r.Header.Get("webhook-id")] = r.Header.Clone()
				bodies[r.Header.Get("webhook-id")] = body
				mu.Unlock()
				got <- struct{}{}
			}))
			t.Cleanup(rcv.Close)

			first := startNode(t, db, flags(-1)...)
			app, full, _ := newApp(t, first, "orders")
			tr, err := client.New(first.URL, full).CreateTrigger(t.Context(), app, "orders", rcv.URL, "")
			require.NoError(t, err)
			const n = 20
			for i := range n {
				_, err := client.New(first.URL, full).Publish(t.Context(), app, "orders", fmt.Appendf(nil, `{"n":%d}`, i))
				require.NoError(t, err)
			}
			first.stop(t, syscall.SIGKILL)

			startNode(t, db, flags(4)...)
			for range n {
				select {
				case <-got:
				case <-time.After(30 * time.Second):
					require.FailNow(t, "not every acknowledged message was delivered")
				}
			}
			wh, err := standardwebhooks.NewWebhook(tr.Secret)
			require.NoError(t, err)
			mu.Lock()
			defer mu.Unlock()
			require.Len(t, hits, n, "one delivery per message")
			for id, h := range hits {
				require.NoError(t, wh.Verify(bodies[id], h), "signed")
				require.Contains(t, string(bodies[id]), `"topic":"orders"`)
			}
		})
	}
}
