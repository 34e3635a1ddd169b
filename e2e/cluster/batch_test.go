package cluster_test

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/pgtest"
)

// TestBatchesSurviveKill publishes batches from four publishers, kills the
// server with SIGKILL while they are in flight, and starts it again on the
// same storage: every batch that got its 202 is there, whole; every other
// batch is there whole or not at all; ids have no gap.
func TestBatchesSurviveKill(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			var db string
			dir := t.TempDir()
			if kind == "postgres" {
				db = pgtest.NewDatabase(t)
			}
			n := startNode(t, db, "--data-dir", dir)
			app, full, _ := newApp(t, n, "orders")

			const size = 20
			type item struct {
				P, B, I int
			}
			var (
				mu    sync.Mutex
				acked = map[[2]int]bool{} // publisher, batch
				wg    sync.WaitGroup
			)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			pub := client.New(n.URL, full)
			for p := range 4 {
				wg.Go(func() {
					for b := 0; ; b++ {
						msgs := make([]client.BatchMessage, size)
						for i := range msgs {
							body, _ := json.Marshal(item{p, b, i})
							msgs[i] = client.BatchMessage{Topic: "orders", Message: body}
						}
						if _, err := pub.PublishBatch(ctx, app, msgs); err != nil {
							return // the server is gone
						}
						mu.Lock()
						acked[[2]int{p, b}] = true
						mu.Unlock()
					}
				})
			}
			require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= 40 }, 30*time.Second, 5*time.Millisecond)
			n.stop(t, syscall.SIGKILL)
			wg.Wait()

			n = startNode(t, db, "--data-dir", dir)
			c := client.New(n.URL, full)
			var hist []client.Message
			for after := "0"; ; {
				page, err := c.History(t.Context(), app, "orders", after, 1000)
				require.NoError(t, err)
				if len(page) == 0 {
					break
				}
				hist = append(hist, page...)
				after = page[len(page)-1].ID
			}
			perBatch := map[[2]int]int{}
			for i, m := range hist {
				require.Equal(t, strconv.Itoa(i+1), m.ID, "ids without a gap")
				var it item
				require.NoError(t, json.Unmarshal(m.Message, &it))
				perBatch[[2]int{it.P, it.B}]++
			}
			for b, got := range perBatch {
				require.Equal(t, size, got, "batch %v stored in part", b)
			}
			mu.Lock()
			defer mu.Unlock()
			for b := range acked {
				require.Equal(t, size, perBatch[b], "batch %v was acknowledged but is not stored", b)
			}
			t.Logf("%d batches acknowledged, %d stored", len(acked), len(perBatch))
		})
	}
}
