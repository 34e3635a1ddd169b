package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/postgres"
	"github.com/heraldhq/herald/internal/store/storetest"
)

// addTriggers creates n enabled triggers on a topic and returns their ids.
func addTriggers(t *testing.T, st *postgres.Store, appID, topic string, n int) []string {
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

// deliveryCounts reads, on a connection of its own, how many deliveries
// there are and how many distinct (trigger, message) pairs they cover.
func deliveryCounts(t *testing.T, dbURL string) (total, distinct int64) {
	t.Helper()
	err := connect(t, dbURL).QueryRow(t.Context(),
		`SELECT count(*), count(DISTINCT (trigger_id, message_id)) FROM herald.deliveries`).Scan(&total, &distinct)
	require.NoError(t, err)
	return total, distinct
}

// The deliveries of a publish commit with its message or not at all: a
// batch that fails after they were inserted leaves neither, nor its
// idempotency key.
func TestOutboxRollsBackWithMessages(t *testing.T) {
	t.Parallel()

	t.Run("BeforeCommitFails", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		dbURL := pgtest.NewDatabase(t)
		errBoom := errors.New("boom")
		var fail atomic.Bool
		var sawDeliveries atomic.Int64
		st := openStore(t, dbURL, postgres.Options{
			BeforeCommit: func(ctx context.Context, tx pgx.Tx, _ []store.Message) error {
				if !fail.Load() {
					return nil
				}
				// Inside the transaction the deliveries are there...
				var n int64
				if err := tx.QueryRow(ctx, `SELECT count(*) FROM herald.deliveries`).Scan(&n); err != nil {
					return err
				}
				sawDeliveries.Store(n)
				return errBoom
			},
		})
		setupTopic(t, st, "app", "t")
		addTriggers(t, st, "app", "t", 2)
		_, err := st.Publish(ctx, store.PublishRequest{AppID: "app", Topic: "t", Body: []byte(`1`)})
		require.NoError(t, err)

		fail.Store(true)
		doomed := store.PublishRequest{AppID: "app", Topic: "t", Body: []byte(`2`), IdempotencyKey: "k"}
		_, err = st.Publish(ctx, doomed)
		require.ErrorIs(t, err, errBoom)
		require.Equal(t, int64(4), sawDeliveries.Load(), "BeforeCommit ran after the deliveries were inserted")

		// ...and rolled back with the message.
		total, _ := deliveryCounts(t, dbURL)
		require.Equal(t, int64(2), total)
		msgs, err := st.History(ctx, "app", "t", 0, 10)
		require.NoError(t, err)
		require.Equal(t, []uint64{1}, storetest.IDs(msgs))

		// The key was not kept: the retry is a new publish.
		fail.Store(false)
		msg, err := st.Publish(ctx, doomed)
		require.NoError(t, err)
		require.Equal(t, uint64(2), msg.ID)
		total, distinct := deliveryCounts(t, dbURL)
		require.Equal(t, [2]int64{4, 4}, [2]int64{total, distinct})
	})

	// A delivery the database refuses fails the batch: its message is not
	// stored either.
	t.Run("DeliveryInsertFails", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		dbURL := pgtest.NewDatabase(t)
		st := openStore(t, dbURL, postgres.Options{})
		setupTopic(t, st, "app", "t")
		addTriggers(t, st, "app", "t", 1)
		pgtest.Exec(t, dbURL, `
			CREATE FUNCTION herald.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN
				IF NEW.message_id = 2 THEN RAISE EXCEPTION 'refused'; END IF;
				RETURN NEW;
			END $$;
			CREATE TRIGGER refuse BEFORE INSERT ON herald.deliveries FOR EACH ROW EXECUTE FUNCTION herald.refuse();`)

		called := false
		for i := range 2 {
			_, err := st.Publish(ctx, store.PublishRequest{
				AppID: "app", Topic: "t", Body: fmt.Appendf(nil, "%d", i),
				CommittedFunc: func(store.Message) { called = i == 1 },
			})
			if i == 1 {
				require.ErrorContains(t, err, "refused")
			} else {
				require.NoError(t, err)
			}
		}
		require.False(t, called, "CommittedFunc for a rolled-back publish")
		msgs, err := st.History(ctx, "app", "t", 0, 10)
		require.NoError(t, err)
		require.Equal(t, []uint64{1}, storetest.IDs(msgs))
		topic, err := st.GetTopic(ctx, "app", "t")
		require.NoError(t, err)
		require.Equal(t, uint64(1), topic.LastID)
		total, _ := deliveryCounts(t, dbURL)
		require.Equal(t, int64(1), total)
	})
}

// Eight publishers on two nodes, 500 publishes each, to a topic with three
// triggers, half of them with idempotency keys: no error, every message
// stored once, and exactly one delivery per trigger per message.
func TestOutboxConcurrentPublishers(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dbURL := pgtest.NewDatabase(t)
	nodes := []*postgres.Store{openStore(t, dbURL, postgres.Options{}), openStore(t, dbURL, postgres.Options{})}
	setupTopic(t, nodes[0], "app", "hot")
	triggers := addTriggers(t, nodes[0], "app", "hot", 3)
	const publishers, each = 8, 500

	request := func(p, i int) store.PublishRequest {
		req := store.PublishRequest{AppID: "app", Topic: "hot", Body: fmt.Appendf(nil, `{"p":%d,"i":%d}`, p, i)}
		if p%2 == 0 {
			req.IdempotencyKey = fmt.Sprintf("p%d-i%d", p, i)
		}
		return req
	}
	errs := make([]error, publishers)
	firstIDs := make([]uint64, publishers)
	var wg sync.WaitGroup
	for p := range publishers {
		node := nodes[p%len(nodes)]
		wg.Go(func() {
			for i := range each {
				msg, err := node.Publish(ctx, request(p, i))
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
	for _, err := range errs {
		require.NoError(t, err)
	}
	msgs, err := nodes[1].History(ctx, "app", "hot", 0, 2*publishers*each)
	require.NoError(t, err)
	require.Equal(t, storetest.Seq(1, publishers*each), storetest.IDs(msgs))
	total, distinct := deliveryCounts(t, dbURL)
	require.Equal(t, int64(publishers*each*len(triggers)), total)
	require.Equal(t, total, distinct)
	stats, err := nodes[0].ListTriggers(ctx, "app", "hot")
	require.NoError(t, err)
	require.Len(t, stats, len(triggers))
	for _, ts := range stats {
		require.Equal(t, int64(publishers*each), ts.Pending)
	}

	// The keyed publishes again, from the other node: replays only.
	for p := 0; p < publishers; p += 2 {
		msg, err := nodes[(p+1)%len(nodes)].Publish(ctx, request(p, 0))
		require.NoError(t, err)
		require.Equal(t, firstIDs[p], msg.ID)
	}
	total, _ = deliveryCounts(t, dbURL)
	require.Equal(t, int64(publishers*each*len(triggers)), total)
}

// Two nodes publish with one key at the same moment. The second's batch
// does not see the first's key (not committed yet), waits on the topic's
// row, stores its message, then finds the key taken: it rolls back, runs
// again and returns the first one's message. One message, one delivery per
// trigger, and the second's id given back.
func TestIdempotencyKeyRaceAcrossNodes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dbURL := pgtest.NewDatabase(t)
	entered := make(chan struct{})
	release := make(chan struct{})
	var hold atomic.Bool
	first := openStore(t, dbURL, postgres.Options{
		BeforeCommit: func(ctx context.Context, _ pgx.Tx, _ []store.Message) error {
			if hold.CompareAndSwap(true, false) {
				close(entered)
				select {
				case <-release:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		},
	})
	second := openStore(t, dbURL, postgres.Options{})
	setupTopic(t, first, "app", "t")
	addTriggers(t, first, "app", "t", 2)
	req := store.PublishRequest{AppID: "app", Topic: "t", Body: []byte(`{"once":true}`), IdempotencyKey: "order-42"}

	hold.Store(true)
	var msgs [2]store.Message
	var errs [2]error
	var wg sync.WaitGroup
	wg.Go(func() { msgs[0], errs[0] = first.Publish(ctx, req) })
	<-entered
	wg.Go(func() { msgs[1], errs[1] = second.Publish(ctx, req) })
	// The second waits for the first's lock.
	observer := connect(t, dbURL)
	waitFor(t, func() bool {
		var waiting int
		err := observer.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting)
		require.NoError(t, err)
		return waiting > 0
	})
	close(release)
	wg.Wait()

	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	require.Equal(t, uint64(1), msgs[0].ID)
	require.Equal(t, msgs[0].ID, msgs[1].ID)
	require.True(t, msgs[0].PublishedAt.Equal(msgs[1].PublishedAt))
	require.Equal(t, string(msgs[0].Body), string(msgs[1].Body))
	history, err := second.History(ctx, "app", "t", 0, 10)
	require.NoError(t, err)
	require.Equal(t, []uint64{1}, storetest.IDs(history))
	topic, err := second.GetTopic(ctx, "app", "t")
	require.NoError(t, err)
	require.Equal(t, uint64(1), topic.LastID, "the second's id was given back")
	total, _ := deliveryCounts(t, dbURL)
	require.Equal(t, int64(2), total)
}

// waitFor polls cond until it holds, failing the test after 10 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			require.FailNow(t, "condition not met within 10s")
		}
		<-tick.C
	}
}

// Two nodes, four claimers each, claim 1000 pending deliveries at once:
// while the leases hold, each delivery is leased exactly once. Once they
// run out, each is leased once more, with a second attempt.
func TestTwoNodesClaimEachDeliveryOnce(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dbURL := pgtest.NewDatabase(t)
	nodes := []*postgres.Store{openStore(t, dbURL, postgres.Options{}), openStore(t, dbURL, postgres.Options{})}
	setupTopic(t, nodes[0], "app", "t")
	addTriggers(t, nodes[0], "app", "t", 4)
	const messages = 250
	var wg sync.WaitGroup
	errs := make([]error, 5)
	for p := range 5 {
		wg.Go(func() {
			for i := range messages / 5 {
				if _, err := nodes[p%2].Publish(ctx, store.PublishRequest{AppID: "app", Topic: "t", Body: fmt.Appendf(nil, `[%d,%d]`, p, i)}); err != nil {
					errs[p] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}

	claimRound := func(t *testing.T, at time.Time, attempts int) {
		t.Helper()
		const claimers = 8
		got := make([][]store.Delivery, claimers)
		errs := make([]error, claimers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for c := range claimers {
			node := nodes[c%len(nodes)]
			wg.Go(func() {
				<-start
				for {
					ds, err := node.Claim(ctx, at, time.Hour, 7)
					if err != nil {
						errs[c] = err
						return
					}
					if len(ds) == 0 {
						return
					}
					got[c] = append(got[c], ds...)
				}
			})
		}
		close(start)
		wg.Wait()
		seen := make(map[string]int)
		perNode := make([]int, len(nodes))
		for c, ds := range got {
			require.NoError(t, errs[c])
			perNode[c%len(nodes)] += len(ds)
			for _, d := range ds {
				seen[d.ID]++
				require.Equal(t, attempts, d.Attempts)
				require.True(t, d.LeaseUntil.Equal(at.Add(time.Hour)))
			}
		}
		require.Len(t, seen, 4*messages, "deliveries claimed")
		for id, n := range seen {
			require.Equal(t, 1, n, "delivery %s claimed %d times", id, n)
		}
		require.NotZero(t, perNode[0], "node 0 claimed nothing: the test did not race the nodes")
		require.NotZero(t, perNode[1], "node 1 claimed nothing: the test did not race the nodes")
	}
	now := time.Now().Add(time.Minute).Truncate(time.Microsecond)
	claimRound(t, now, 1)
	// Within the leases, nothing is due.
	ds, err := nodes[1].Claim(ctx, now.Add(time.Hour-time.Second), time.Hour, 1000)
	require.NoError(t, err)
	require.Empty(t, ds)
	claimRound(t, now.Add(time.Hour), 2)
}

// Triggers come and go while publishes run: a batch never enqueues for a
// trigger deleted under it (which would break the foreign key and fail
// every publish of the batch).
func TestDeleteTriggerRacingPublishes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dbURL := pgtest.NewDatabase(t)
	nodes := []*postgres.Store{openStore(t, dbURL, postgres.Options{}), openStore(t, dbURL, postgres.Options{})}
	setupTopic(t, nodes[0], "app", "t")
	const publishers, each, churn = 4, 150, 30

	errs := make([]error, publishers+1)
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for range each {
				if _, err := nodes[p%2].Publish(ctx, store.PublishRequest{AppID: "app", Topic: "t", Body: []byte(`{}`)}); err != nil {
					errs[p] = err
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range churn {
			id := fmt.Sprintf("tr%d", i)
			err := nodes[1].CreateTrigger(ctx, store.Trigger{ID: id, AppID: "app", Topic: "t", URL: "https://x", Secret: "s"})
			if err == nil {
				err = nodes[1].DeleteTrigger(ctx, "app", "t", id)
			}
			if err != nil {
				errs[publishers] = err
				return
			}
		}
	})
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	total, _ := deliveryCounts(t, dbURL)
	require.Zero(t, total, "deliveries of deleted triggers are deleted with them")
}
