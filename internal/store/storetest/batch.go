package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/store"
)

// batchReq is a PublishRequest of the batch tests.
func batchReq(appID, topic, body, key string) store.PublishRequest {
	return store.PublishRequest{AppID: appID, Topic: topic, Body: []byte(body), IdempotencyKey: key}
}

// requireItemError checks that err is a *store.ItemError naming index and
// wrapping target.
func requireItemError(t *testing.T, err error, index int, target error) {
	t.Helper()
	var ie *store.ItemError
	require.ErrorAs(t, err, &ie)
	require.Equal(t, index, ie.Index, "index of %v", err)
	require.ErrorIs(t, err, target)
}

// keyUsedOnB creates an app with topics a and b, publishes to b with the
// idempotency key "k" and returns the app.
func keyUsedOnB(t *testing.T, b *testBundle) store.App {
	t.Helper()
	app := createApp(t, b)
	createTopic(t, b, app.ID, "a")
	createTopic(t, b, app.ID, "b")
	_, err := b.st.Publish(b.ctx, batchReq(app.ID, "b", `1`, "k"))
	require.NoError(t, err)
	return app
}

func testPublishBatch(t *testing.T, setup setupFunc) {
	t.Helper()

	t.Run("StoresInRequestOrderAcrossTopics", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		createTopic(t, b, app.ID, "a")
		createTopic(t, b, app.ID, "b")
		first := publish(t, b, app.ID, "a", `"single"`)

		var seen []store.Message
		reqs := []store.PublishRequest{
			batchReq(app.ID, "a", `1`, ""),
			batchReq(app.ID, "b", `2`, ""),
			batchReq(app.ID, "a", `{"three":3}`, ""),
			batchReq(app.ID, "a", `null`, ""),
			batchReq(app.ID, "b", `"five"`, ""),
		}
		for i := range reqs {
			reqs[i].CommittedFunc = func(m store.Message) { seen = append(seen, m) }
		}
		got, err := b.st.PublishBatch(b.ctx, reqs)
		require.NoError(t, err)
		require.Len(t, got, len(reqs))
		for i, m := range got {
			require.Equal(t, reqs[i].Topic, m.Topic, "message %d", i)
			require.Equal(t, string(reqs[i].Body), string(m.Body), "message %d", i)
			requireUTC(t, m.PublishedAt)
		}
		require.Equal(t, []uint64{2, 1, 3, 4, 2}, IDs(got))
		// Every message handed over once, in id order per topic.
		require.Len(t, seen, len(reqs))
		requireMessages(t, []store.Message{got[0], got[2], got[3]}, filterTopic(seen, "a"))
		requireMessages(t, []store.Message{got[1], got[4]}, filterTopic(seen, "b"))

		requireMessages(t, []store.Message{first, got[0], got[2], got[3]}, history(t, b, app.ID, "a"))
		requireMessages(t, []store.Message{got[1], got[4]}, history(t, b, app.ID, "b"))
		require.Equal(t, uint64(5), publish(t, b, app.ID, "a", `5`).ID)
	})

	t.Run("EmptyBatchStoresNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		got, err := b.st.PublishBatch(b.ctx, nil)
		require.NoError(t, err)
		require.Empty(t, got)
	})

	t.Run("UnknownTopicInTheMiddleStoresNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		other := createApp(t, b)
		createTopic(t, b, app.ID, "a")
		createTopic(t, b, app.ID, "b")
		createTopic(t, b, other.ID, "c")
		called := false
		reqs := []store.PublishRequest{
			batchReq(app.ID, "a", `1`, "k-a"),
			batchReq(app.ID, "b", `2`, ""),
			batchReq(app.ID, "missing", `3`, ""),
			batchReq(app.ID, "a", `4`, ""),
			batchReq(app.ID, "missing", `5`, ""),
		}
		for i := range reqs {
			reqs[i].CommittedFunc = func(store.Message) { called = true }
		}
		_, err := b.st.PublishBatch(b.ctx, reqs)
		requireItemError(t, err, 2, store.ErrNotFound)
		// Another app's topic is as missing as one that never was.
		_, err = b.st.PublishBatch(b.ctx, []store.PublishRequest{batchReq(app.ID, "a", `1`, ""), batchReq(app.ID, "c", `2`, "")})
		requireItemError(t, err, 1, store.ErrNotFound)
		require.False(t, called, "CommittedFunc called for a failed batch")

		require.Empty(t, history(t, b, app.ID, "a"))
		require.Empty(t, history(t, b, app.ID, "b"))
		// No id was taken, and the key of the failed batch is not known.
		msg, err := b.st.Publish(b.ctx, batchReq(app.ID, "a", `"after"`, "k-a"))
		require.NoError(t, err)
		require.Equal(t, uint64(1), msg.ID)
		require.Equal(t, `"after"`, string(msg.Body))
		require.Equal(t, uint64(1), publish(t, b, app.ID, "b", `1`).ID)
	})

	t.Run("KeyOfAnEarlierPublishReplaysThatItem", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		createTopic(t, b, app.ID, "a")
		single, err := b.st.Publish(b.ctx, batchReq(app.ID, "a", `"single"`, "k1"))
		require.NoError(t, err)

		calls := 0
		reqs := []store.PublishRequest{
			batchReq(app.ID, "a", `"new 1"`, "k2"),
			batchReq(app.ID, "a", `"retried"`, "k1"),
			batchReq(app.ID, "a", `"new 2"`, ""),
		}
		for i := range reqs {
			reqs[i].CommittedFunc = func(store.Message) { calls++ }
		}
		got, err := b.st.PublishBatch(b.ctx, reqs)
		require.NoError(t, err)
		requireMessage(t, single, got[1])
		require.Equal(t, []uint64{2, 1, 3}, IDs(got))
		require.Equal(t, 2, calls, "CommittedFunc calls: the replay is not handed over again")
		requireMessages(t, []store.Message{single, got[0], got[2]}, history(t, b, app.ID, "a"))

		// The batch's own keys replay too, in a batch or alone.
		again, err := b.st.PublishBatch(b.ctx, reqs[:2])
		require.NoError(t, err)
		requireMessages(t, got[:2], again)
		alone, err := b.st.Publish(b.ctx, reqs[0])
		require.NoError(t, err)
		requireMessage(t, got[0], alone)
		require.Len(t, history(t, b, app.ID, "a"), 3)
	})

	t.Run("KeyUsedWithAnotherTopicFailsTheBatch", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := keyUsedOnB(t, b)

		_, err := b.st.PublishBatch(b.ctx, []store.PublishRequest{
			batchReq(app.ID, "a", `1`, ""),
			batchReq(app.ID, "a", `2`, "fresh"),
			batchReq(app.ID, "a", `3`, "k"),
			batchReq(app.ID, "a", `4`, ""),
		})
		requireItemError(t, err, 2, store.ErrConflict)
		require.Empty(t, history(t, b, app.ID, "a"))
		msg, err := b.st.Publish(b.ctx, batchReq(app.ID, "a", `"x"`, "fresh"))
		require.NoError(t, err)
		require.Equal(t, uint64(1), msg.ID, "the failed batch's key is not known")
	})

	// A batch of one item is a batch all the same: its failure names the
	// item, as for a longer one.
	t.Run("BatchOfOneFailsAsAnItem", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := keyUsedOnB(t, b)

		_, err := b.st.PublishBatch(b.ctx, []store.PublishRequest{batchReq(app.ID, "missing", `1`, "")})
		requireItemError(t, err, 0, store.ErrNotFound)
		_, err = b.st.PublishBatch(b.ctx, []store.PublishRequest{batchReq(app.ID, "a", `1`, "k")})
		requireItemError(t, err, 0, store.ErrConflict)
		require.Empty(t, history(t, b, app.ID, "a"))
	})

	t.Run("TriggersEnqueueInTheSameTransaction", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		createTopic(t, b, app.ID, "hooked")
		createTopic(t, b, app.ID, "plain")
		tr := createTrigger(t, b, app.ID, "hooked")
		got, err := b.st.PublishBatch(b.ctx, []store.PublishRequest{
			batchReq(app.ID, "hooked", `1`, ""),
			batchReq(app.ID, "plain", `2`, ""),
			batchReq(app.ID, "hooked", `3`, ""),
		})
		require.NoError(t, err)
		// A failed batch enqueues nothing.
		_, err = b.st.PublishBatch(b.ctx, []store.PublishRequest{
			batchReq(app.ID, "hooked", `4`, ""),
			batchReq(app.ID, "nope", `5`, ""),
		})
		requireItemError(t, err, 1, store.ErrNotFound)

		ds := claimAll(t, b, later())
		var ids []uint64
		for _, d := range ds {
			require.Equal(t, tr.ID, d.TriggerID)
			ids = append(ids, d.MessageID)
		}
		require.ElementsMatch(t, []uint64{got[0].ID, got[2].ID}, ids)
	})

	t.Run("RacingBatchesAndSinglesKeepIDsGapFree", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		createTopic(t, b, app.ID, "t")
		createTopic(t, b, app.ID, "u")
		const workers, rounds, size = 6, 15, 4
		var (
			mu     sync.Mutex
			stored []store.Message
			errs   []error
		)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for r := range rounds {
					var reqs []store.PublishRequest
					for i := range size {
						reqs = append(reqs, batchReq(app.ID, []string{"t", "u"}[i%2], fmt.Sprintf(`{"w":%d,"r":%d,"i":%d}`, w, r, i), ""))
					}
					fail := (w+r)%3 == 0
					if fail {
						reqs[size-1].Topic = "missing"
					}
					var got []store.Message
					var err error
					if w%2 == 0 && !fail {
						// Singles race with the batches.
						for _, req := range reqs {
							var m store.Message
							if m, err = b.st.Publish(b.ctx, req); err != nil {
								break
							}
							got = append(got, m)
						}
					} else {
						got, err = b.st.PublishBatch(b.ctx, reqs)
					}
					mu.Lock()
					switch {
					case fail && err == nil:
						errs = append(errs, fmt.Errorf("worker %d round %d: a batch with a missing topic was stored", w, r))
					case fail && !errors.Is(err, store.ErrNotFound):
						errs = append(errs, fmt.Errorf("worker %d round %d: %w", w, r, err))
					case !fail && err != nil:
						errs = append(errs, err)
					case !fail:
						stored = append(stored, got...)
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		require.NoError(t, errors.Join(errs...))
		for _, topic := range []string{"t", "u"} {
			want := filterTopic(stored, topic)
			hist, err := b.st.History(b.ctx, app.ID, topic, 0, 100_000)
			require.NoError(t, err)
			require.Equal(t, Seq(1, uint64(len(want))), IDs(hist), "topic %s: ids gap-free", topic)
			byID := map[uint64]store.Message{}
			for _, m := range want {
				byID[m.ID] = m
			}
			for _, m := range hist {
				requireMessage(t, byID[m.ID], m)
			}
		}
	})
}

// filterTopic returns the messages of msgs in topic, in order.
func filterTopic(msgs []store.Message, topic string) []store.Message {
	var out []store.Message
	for _, m := range msgs {
		if m.Topic == topic {
			out = append(out, m)
		}
	}
	return out
}
