package sqlite_test

import (
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/sqlite"
)

// openDirect opens the store's file on a connection of its own, outside
// the store, closed when t ends.
func openDirect(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	require.NoError(t, err)
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	return db
}

// addTriggers creates n enabled triggers on a topic and returns their ids.
func addTriggers(t *testing.T, st *sqlite.Store, appID, topic string, n int) []string {
	t.Helper()
	var out []string
	for i := range n {
		id := fmt.Sprintf("%s-%s-tr%d", appID, topic, i)
		require.NoError(t, st.CreateTrigger(t.Context(), store.Trigger{
			ID: id, AppID: appID, Topic: topic, URL: "https://hooks.example.com/" + id, Secret: "whsec_" + id,
		}))
		out = append(out, id)
	}
	return out
}

// setupTopic creates an app and a topic in it.
func setupTopic(t *testing.T, st *sqlite.Store, appID, topic string) {
	t.Helper()
	require.NoError(t, st.CreateApp(t.Context(), store.App{ID: appID, Name: appID}, nil))
	_, created, err := st.CreateTopic(t.Context(), appID, topic)
	require.NoError(t, err)
	require.True(t, created)
}

// deliveryCounts reads how many deliveries there are and how many
// distinct (trigger, message) pairs they cover.
func deliveryCounts(t *testing.T, db *sql.DB) (total, distinct int64) {
	t.Helper()
	err := db.QueryRowContext(t.Context(),
		`SELECT count(*), (SELECT count(*) FROM (SELECT DISTINCT trigger_id, message_id FROM deliveries)) FROM deliveries`).
		Scan(&total, &distinct)
	require.NoError(t, err)
	return total, distinct
}

// A delivery the database refuses (here a SQLite trigger raises) fails the
// publish's transaction: its message, its other deliveries and its
// idempotency key are not stored either.
func TestOutboxRollsBackWithMessages(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, path := openStore(t, sqlite.Options{})
	setupTopic(t, st, "app", "t")
	addTriggers(t, st, "app", "t", 2)
	db := openDirect(t, path)
	// The second trigger's delivery of message 2 is refused; the first
	// trigger's is inserted before it, in the same transaction.
	_, err := db.ExecContext(ctx, `CREATE TRIGGER refuse BEFORE INSERT ON deliveries
		WHEN NEW.message_id = 2 AND NEW.trigger_id = 'app-t-tr1'
		BEGIN SELECT RAISE(ABORT, 'refused'); END`)
	require.NoError(t, err)

	msg, err := st.Publish(ctx, store.PublishRequest{AppID: "app", Topic: "t", Body: []byte(`1`)})
	require.NoError(t, err)
	require.Equal(t, uint64(1), msg.ID)
	called := false
	doomed := store.PublishRequest{
		AppID: "app", Topic: "t", Body: []byte(`2`), IdempotencyKey: "k",
		CommittedFunc: func(store.Message) { called = true },
	}
	_, err = st.Publish(ctx, doomed)
	require.ErrorContains(t, err, "refused")
	require.False(t, called, "CommittedFunc for a rolled-back publish")

	msgs, err := st.History(ctx, "app", "t", 0, 10)
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	total, _ := deliveryCounts(t, db)
	require.Equal(t, int64(2), total, "message 1's deliveries only")

	// Without the fault the same publish is new (its key was not kept),
	// and takes the id the failed one gave back.
	_, err = db.ExecContext(ctx, `DROP TRIGGER refuse`)
	require.NoError(t, err)
	doomed.CommittedFunc = nil
	msg, err = st.Publish(ctx, doomed)
	require.NoError(t, err)
	require.Equal(t, uint64(2), msg.ID)
	total, distinct := deliveryCounts(t, db)
	require.Equal(t, [2]int64{4, 4}, [2]int64{total, distinct})
}

// Eight publishers, 500 publishes each, to a topic with three triggers,
// half of them with idempotency keys: no error (no "database is locked"),
// every message stored once, and exactly one delivery per trigger per
// message.
func TestOutboxConcurrentPublishers(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, path := openStore(t, sqlite.Options{})
	setupTopic(t, st, "app", "hot")
	triggers := addTriggers(t, st, "app", "hot", 3)
	const publishers, each = 8, 500

	request := func(p, i int) store.PublishRequest {
		req := store.PublishRequest{AppID: "app", Topic: "hot", Body: fmt.Appendf(nil, `{"p":%d,"i":%d}`, p, i)}
		if p%2 == 0 {
			req.IdempotencyKey = fmt.Sprintf("p%d-i%d", p, i)
		}
		return req
	}
	errs := make([]error, publishers+1)
	firstIDs := make([]uint64, publishers)
	stop := make(chan struct{})
	var claimer sync.WaitGroup
	// A dispatcher claims and settles alongside, as in production: its
	// writes take turns with the publish batches.
	claimer.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			ds, err := st.Claim(ctx, time.Now().Add(time.Hour), time.Minute, 50)
			if err != nil {
				errs[publishers] = err
				return
			}
			for _, d := range ds {
				if err := st.Settle(ctx, store.Outcome{DeliveryID: d.ID, LeaseUntil: d.LeaseUntil, State: store.DeliveryDelivered, Status: 204}); err != nil {
					errs[publishers] = err
					return
				}
			}
		}
	})
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := range each {
				msg, err := st.Publish(ctx, request(p, i))
				if err != nil {
					errs[p] = err
					return
				}
				if i == 0 {
					firstIDs[p] = msg.ID
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	claimer.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	msgs, err := st.History(ctx, "app", "hot", 0, 2*publishers*each)
	require.NoError(t, err)
	require.Len(t, msgs, publishers*each)
	for i, m := range msgs {
		require.Equal(t, uint64(i+1), m.ID)
	}
	total, distinct := deliveryCounts(t, openDirect(t, path))
	require.Equal(t, int64(publishers*each*len(triggers)), total)
	require.Equal(t, total, distinct)
	stats, err := st.ListTriggers(ctx, "app", "hot")
	require.NoError(t, err)
	require.Len(t, stats, len(triggers))
	for _, ts := range stats {
		require.Equal(t, int64(publishers*each), ts.Pending+ts.Delivered)
	}

	// The keyed publishes again: replays only.
	for p := 0; p < publishers; p += 2 {
		msg, err := st.Publish(ctx, request(p, 0))
		require.NoError(t, err)
		require.Equal(t, firstIDs[p], msg.ID)
	}
	total, _ = deliveryCounts(t, openDirect(t, path))
	require.Equal(t, int64(publishers*each*len(triggers)), total)
}

// TestClaimWithNothingDueWritesNothing holds the file's write lock from a
// connection of the test's own: a Claim with nothing due must still answer
// at once, as it only reads, while one with a delivery due waits for the
// lock and, past the busy timeout, fails.
func TestClaimWithNothingDueWritesNothing(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, path := openStore(t, sqlite.Options{BusyTimeout: 50 * time.Millisecond})
	setupTopic(t, st, "app", "orders")
	addTriggers(t, st, "app", "orders", 1)
	msg, err := st.Publish(ctx, store.PublishRequest{AppID: "app", Topic: "orders", Body: []byte(`1`)})
	require.NoError(t, err)
	// The delivery falls due at its message's stamp.
	before, due := msg.PublishedAt.Add(-time.Second), msg.PublishedAt.Add(time.Second)

	db := openDirect(t, path)
	conn, err := db.Conn(ctx)
	require.NoError(t, err)
	defer func() { require.NoError(t, conn.Close()) }()
	_, err = conn.ExecContext(ctx, `BEGIN IMMEDIATE`)
	require.NoError(t, err)

	ds, err := st.Claim(ctx, before, time.Minute, 10)
	require.NoError(t, err, "nothing is due: the claim takes no lock")
	require.Empty(t, ds)
	_, err = st.Claim(ctx, due, time.Minute, 10)
	require.ErrorIs(t, err, store.ErrUnavailable, "a delivery is due: the claim needs the write lock")

	_, err = conn.ExecContext(ctx, `ROLLBACK`)
	require.NoError(t, err)
	ds, err = st.Claim(ctx, due, time.Minute, 10)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	require.Equal(t, msg.ID, ds[0].MessageID)
}
