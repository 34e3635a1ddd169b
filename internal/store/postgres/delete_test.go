package postgres_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/postgres"
)

// Messages have no foreign key to their topic, so deleting a topic or an
// app deletes their history itself. Publishers keep publishing while the
// delete runs: a batch that committed just before the delete took the
// topic's row must go too, and none may commit after it. An orphan row
// would be invisible to every read (a recreated topic gets a new row id),
// so the test counts the rows.
func TestDeleteLeavesNoHistory(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		delete func(t *testing.T, st *postgres.Store) error
	}{
		{"topic", func(t *testing.T, st *postgres.Store) error {
			t.Helper()
			return st.DeleteTopic(t.Context(), "app", "t0")
		}},
		{"app", func(t *testing.T, st *postgres.Store) error {
			t.Helper()
			return st.DeleteApp(t.Context(), "app")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			dbURL := pgtest.NewDatabase(t)
			st := openStore(t, dbURL, postgres.Options{Writers: 2})
			setupTopic(t, st, "app", "t0")
			_, _, err := st.CreateTopic(ctx, "app", "t1")
			require.NoError(t, err)

			publish := func(topic string, i int) error {
				_, err := st.Publish(ctx, store.PublishRequest{AppID: "app", Topic: topic, Body: fmt.Appendf(nil, `{"i":%d}`, i)})
				return err
			}
			for i := range 20 {
				require.NoError(t, publish("t0", i))
				require.NoError(t, publish("t1", i))
			}
			// Publishers race the delete until their topic is gone.
			started := make(chan struct{}, 4)
			var wg sync.WaitGroup
			errs := make([]error, 4)
			for p := range 4 {
				wg.Go(func() {
					for i := 0; ; i++ {
						err := publish("t0", i)
						if i == 0 {
							started <- struct{}{}
						}
						if err != nil {
							if !errors.Is(err, store.ErrNotFound) {
								errs[p] = err
							}
							return
						}
					}
				})
			}
			for range 4 {
				<-started
			}
			require.NoError(t, tc.delete(t, st))
			wg.Wait()
			for _, err := range errs {
				require.NoError(t, err)
			}

			conn := connect(t, dbURL)
			var orphans, kept int64
			require.NoError(t, conn.QueryRow(ctx, `SELECT
				count(*) FILTER (WHERE t.id IS NULL), count(*) FILTER (WHERE t.id IS NOT NULL)
				FROM herald.messages m LEFT JOIN herald.topics t ON t.id = m.topic_id`).Scan(&orphans, &kept))
			require.Zero(t, orphans, "messages of deleted topics")
			if tc.name == "topic" {
				require.EqualValues(t, 20, kept, "the other topic's messages")
			} else {
				require.Zero(t, kept)
			}
		})
	}
}
