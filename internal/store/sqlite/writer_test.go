package sqlite_test

import (
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/sqlite"
)

// TestWriterAfterFailedStatement makes the insert of a message fail inside
// the writer's transaction, with a real SQLite trigger on the messages
// table, and checks that the batch stored nothing and took no id, and that
// the write connection is usable afterwards, by the writer and by other
// writes. RAISE(ABORT) fails the statement and leaves the transaction open
// for the writer's ROLLBACK; RAISE(ROLLBACK) ends the transaction itself,
// so the writer's ROLLBACK fails too and the writer gives the connection up:
// the next batch prepares its statements on a new one.
func TestWriterAfterFailedStatement(t *testing.T) {
	t.Parallel()
	for _, raise := range []string{"ABORT", "ROLLBACK"} {
		t.Run(raise, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			st, path := openStore(t, sqlite.Options{})
			require.NoError(t, st.CreateApp(ctx, store.App{ID: "app", Name: "app"}, nil))
			_, _, err := st.CreateTopic(ctx, "app", "orders")
			require.NoError(t, err)
			publish := func(body string) (store.Message, error) {
				return st.Publish(ctx, store.PublishRequest{AppID: "app", Topic: "orders", Body: []byte(body)})
			}
			// The writer's statements are prepared before the trigger
			// changes the schema.
			msg, err := publish(`1`)
			require.NoError(t, err)
			require.Equal(t, uint64(1), msg.ID)

			// A connection of the test's own adds the fault.
			db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(30000)")
			require.NoError(t, err)
			defer func() { require.NoError(t, db.Close()) }()
			_, err = db.ExecContext(ctx, `CREATE TRIGGER fault BEFORE INSERT ON messages
				WHEN CAST(NEW.body AS TEXT) = '"fail"'
				BEGIN SELECT RAISE(`+raise+`, 'injected fault'); END`)
			require.NoError(t, err)

			for want := uint64(2); want <= 4; want++ {
				_, err = publish(`"fail"`)
				require.ErrorContains(t, err, "injected fault")
				msg, err = publish(`2`)
				require.NoError(t, err)
				require.Equal(t, want, msg.ID, "a failed batch takes no id")
				// Not left in a transaction: another write begins its own.
				_, _, err = st.CreateTopic(ctx, "app", "other")
				require.NoError(t, err)
			}
			// A batch publish with the fault in the middle stores none of it.
			_, err = st.PublishBatch(ctx, []store.PublishRequest{
				{AppID: "app", Topic: "orders", Body: []byte(`3`)},
				{AppID: "app", Topic: "orders", Body: []byte(`"fail"`)},
			})
			require.ErrorContains(t, err, "injected fault")
			msg, err = publish(`4`)
			require.NoError(t, err)
			require.Equal(t, uint64(5), msg.ID)

			msgs, err := st.History(ctx, "app", "orders", 0, 100)
			require.NoError(t, err)
			var bodies []string
			for _, m := range msgs {
				bodies = append(bodies, string(m.Body))
			}
			require.Equal(t, []string{`1`, `2`, `2`, `2`, `4`}, bodies)
		})
	}
}

// TestWriterSeesOtherConnections publishes to one file from two Stores in
// turn, and changes the file from a plain connection of the test's own:
// the writer's cache of topic heads must see what the others committed
// (see heads), so that ids stay gap-free and unique and a trigger created
// elsewhere gets its deliveries.
func TestWriterSeesOtherConnections(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	a, path := openStore(t, sqlite.Options{})
	b, err := sqlite.Open(ctx, path, sqlite.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	require.NoError(t, a.CreateApp(ctx, store.App{ID: "app", Name: "app"}, nil))
	_, _, err = a.CreateTopic(ctx, "app", "orders")
	require.NoError(t, err)
	publish := func(st *sqlite.Store, body string) store.Message {
		t.Helper()
		msg, err := st.Publish(ctx, store.PublishRequest{AppID: "app", Topic: "orders", Body: []byte(body)})
		require.NoError(t, err)
		return msg
	}

	var ids []uint64
	for i := range 3 {
		ids = append(ids, publish(a, fmt.Sprint(i)).ID, publish(b, fmt.Sprint(i)).ID)
	}
	require.Equal(t, []uint64{1, 2, 3, 4, 5, 6}, ids)

	require.NoError(t, b.CreateTrigger(ctx, store.Trigger{
		ID: "tr", AppID: "app", Topic: "orders", URL: "https://hooks.example.com", Secret: "whsec_x",
	}))
	msg := publish(a, `7`)
	require.Equal(t, uint64(7), msg.ID)
	ds, err := a.Claim(ctx, time.Now().Add(time.Hour), time.Minute, 10)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	require.Equal(t, msg.ID, ds[0].MessageID)

	// The topic deleted and made again, with its old row id, behind both
	// Stores' backs: its ids start again at 1.
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(30000)&_pragma=foreign_keys(1)")
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	var rowID int64
	require.NoError(t, db.QueryRowContext(ctx, `SELECT id FROM topics WHERE name = 'orders'`).Scan(&rowID))
	_, err = db.ExecContext(ctx, `DELETE FROM topics WHERE id = ?`, rowID)
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, `INSERT INTO topics (id, app_id, name, created_at) VALUES (?, 'app', 'orders', 0)`, rowID)
	require.NoError(t, err)
	require.Equal(t, uint64(1), publish(a, `8`).ID)
	require.Equal(t, uint64(2), publish(b, `9`).ID)
	msgs, err := a.History(ctx, "app", "orders", 0, 100)
	require.NoError(t, err)
	require.Len(t, msgs, 2)
}

// TestWriterKeepsOthersOfAFailedBatchPublish publishes singles next to
// batch publishes that fail in their last item (a key used for another
// topic), from several goroutines, so that writer batches hold both: each
// failed batch publish must take back its own messages and nothing of the
// singles written before it in the same transaction.
func TestWriterKeepsOthersOfAFailedBatchPublish(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, _ := openStore(t, sqlite.Options{})
	require.NoError(t, st.CreateApp(ctx, store.App{ID: "app", Name: "app"}, nil))
	for _, topic := range []string{"a", "b"} {
		_, _, err := st.CreateTopic(ctx, "app", topic)
		require.NoError(t, err)
	}
	_, err := st.Publish(ctx, store.PublishRequest{AppID: "app", Topic: "b", Body: []byte(`0`), IdempotencyKey: "used"})
	require.NoError(t, err)

	const publishers, each = 4, 50
	var wg sync.WaitGroup
	singles := make([][]store.Message, publishers)
	for p := range publishers {
		wg.Go(func() {
			for i := range each {
				msg, err := st.Publish(ctx, store.PublishRequest{AppID: "app", Topic: "a", Body: fmt.Appendf(nil, `"%d-%d"`, p, i)})
				if !assert.NoError(t, err) {
					return
				}
				singles[p] = append(singles[p], msg)
			}
		})
		wg.Go(func() {
			for range each {
				_, err := st.PublishBatch(ctx, []store.PublishRequest{
					{AppID: "app", Topic: "a", Body: []byte(`"batch"`)},
					{AppID: "app", Topic: "a", Body: []byte(`"batch"`), IdempotencyKey: "used"},
				})
				if !assert.ErrorIs(t, err, store.ErrConflict) {
					return
				}
			}
		})
	}
	wg.Wait()

	msgs, err := st.History(ctx, "app", "a", 0, 10*publishers*each)
	require.NoError(t, err)
	byID := make(map[uint64]string, len(msgs))
	for i, m := range msgs {
		require.Equal(t, uint64(i+1), m.ID, "ids are gap-free")
		byID[m.ID] = string(m.Body)
	}
	require.Len(t, msgs, publishers*each, "every single, no message of a failed batch publish")
	for _, ms := range singles {
		for _, m := range ms {
			require.Equal(t, string(m.Body), byID[m.ID])
		}
	}
}
