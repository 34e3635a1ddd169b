package hostile_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/heraldtest"
	"github.com/heraldhq/herald/internal/pgtest"
)

// TestConcurrentCreatesStopAtTheLimit sends many topic and trigger creates
// at once for an app with limits of 3, on SQLite and on two Postgres nodes
// of one cluster (the creates spread over both): exactly 3 of each are
// created; the others get 429 limit_reached. A count read before each
// create let racing creates past the limit together. The same holds for
// the cap of 20 triggers a topic, which still answers 409
// too_many_triggers.
func TestConcurrentCreatesStopAtTheLimit(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			cfg := heraldtest.Config(t)
			nodes := []*heraldtest.Server{}
			if kind == "postgres" {
				cfg.DatabaseURL = pgtest.NewDatabase(t)
				nodes = append(nodes, heraldtest.Start(t, cfg))
				second := cfg
				second.DataDir = t.TempDir()
				nodes = append(nodes, heraldtest.Start(t, second))
			} else {
				nodes = append(nodes, heraldtest.Start(t, cfg))
			}
			app := nodes[0].NewApp(t, "t")
			a := call(t, http.MethodPatch, nodes[0].URL+"/v1/apps/"+app.ID, heraldtest.AdminToken, nil,
				strings.NewReader(`{"limits":{"topics":4,"triggers":3}}`))
			require.Equal(t, http.StatusOK, a.Status, a.Msg)
			clients := make([]*client.Client, len(nodes))
			for i, n := range nodes {
				clients[i] = client.New(n.URL, app.FullKey)
			}

			const tries = 24
			// The app has topic t: 3 more fit.
			topics := raceHTTP(t, tries, func(i int) error {
				_, _, err := clients[i%len(clients)].CreateTopic(t.Context(), app.ID, fmt.Sprintf("n%d", i))
				return err
			})
			require.Equal(t, map[string]int{"created": 3, "limit_reached": tries - 3}, topics)
			ts, err := app.Full.ListTopics(t.Context(), app.ID)
			require.NoError(t, err)
			require.Len(t, ts, 4)

			triggers := raceHTTP(t, tries, func(i int) error {
				_, err := clients[i%len(clients)].CreateTrigger(t.Context(), app.ID, ts[i%len(ts)].Name, "http://127.0.0.1:9/hook", "")
				return err
			})
			require.Equal(t, map[string]int{"created": 3, "limit_reached": tries - 3}, triggers)

			// The cap of 20 triggers a topic, for an app with the default
			// trigger limit (1000): 40 creates on one topic.
			other := nodes[0].NewApp(t, "u")
			_, _, err = other.Full.CreateTopic(t.Context(), other.ID, "hooks")
			require.NoError(t, err)
			for i, n := range nodes {
				clients[i] = client.New(n.URL, other.FullKey)
			}
			perTopic := raceHTTP(t, 40, func(i int) error {
				_, err := clients[i%len(clients)].CreateTrigger(t.Context(), other.ID, "hooks", "http://127.0.0.1:9/hook", "")
				return err
			})
			require.Equal(t, map[string]int{"created": 20, "too_many_triggers": 20}, perTopic)
		})
	}
}

// raceHTTP runs n calls of f at once and counts them by outcome: created,
// or the error code of the answer.
func raceHTTP(t *testing.T, n int, f func(i int) error) map[string]int {
	t.Helper()
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		count = make(map[string]int)
	)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			outcome := "created"
			if err := f(i); err != nil {
				var apiErr *client.Error
				if errors.As(err, &apiErr) {
					outcome = apiErr.Code
				} else {
					outcome = err.Error()
				}
			}
			mu.Lock()
			count[outcome]++
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	return count
}
