package storetest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/store"
)

// callbackCheck records what a store's CommittedFunc calls for one topic
// look like: ids in order with no gaps, never two at once, each one before
// its Publish returns.
type callbackCheck struct {
	inFlight atomic.Int32
	last     atomic.Uint64
	seen     []atomic.Bool // by id
	mu       sync.Mutex    // guards problems
	problems []string
}

func newCallbackCheck(maxID int) *callbackCheck {
	return &callbackCheck{seen: make([]atomic.Bool, maxID+1)}
}

func (c *callbackCheck) problem(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.problems) < 10 {
		c.problems = append(c.problems, fmt.Sprintf(format, args...))
	}
}

// committed is the CommittedFunc.
func (c *callbackCheck) committed(m store.Message) {
	if n := c.inFlight.Add(1); n != 1 {
		c.problem("%d CommittedFunc calls at once", n)
	}
	if prev := c.last.Swap(m.ID); m.ID != prev+1 {
		c.problem("CommittedFunc got id %d after %d", m.ID, prev)
	}
	if m.ID < uint64(len(c.seen)) {
		c.seen[m.ID].Store(true)
	}
	c.inFlight.Add(-1)
}

// returned checks, after Publish returned m, that the callback had seen it.
func (c *callbackCheck) returned(m store.Message) {
	if m.ID >= uint64(len(c.seen)) || !c.seen[m.ID].Load() {
		c.problem("Publish returned id %d before CommittedFunc saw it", m.ID)
	}
}

func testConcurrency(t *testing.T, setup setupFunc) {
	t.Helper()

	t.Run("OneTopicNoGapsNoDuplicates", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		createTopic(t, b, app.ID, "hot")
		const publishers, each = 8, 200
		check := newCallbackCheck(publishers * each)

		got := make([][]store.Message, publishers)
		errs := make([]error, publishers+1)
		stop := make(chan struct{})
		var readers sync.WaitGroup
		// A reader alongside: it only ever sees whole commits, so what it
		// reads is always exactly 1..n.
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				msgs, err := b.st.History(b.ctx, app.ID, "hot", 0, publishers*each)
				if err != nil {
					errs[publishers] = err
					return
				}
				for i, m := range msgs {
					if m.ID != uint64(i+1) {
						errs[publishers] = fmt.Errorf("reader saw id %d at position %d", m.ID, i)
						return
					}
				}
			}
		})
		var wg sync.WaitGroup
		for p := range publishers {
			wg.Go(func() {
				for i := range each {
					msg, err := b.st.Publish(b.ctx, store.PublishRequest{
						AppID: app.ID, Topic: "hot",
						Body:          fmt.Appendf(nil, `{"p":%d,"i":%d}`, p, i),
						CommittedFunc: check.committed,
					})
					if err != nil {
						errs[p] = err
						return
					}
					check.returned(msg)
					got[p] = append(got[p], msg)
				}
			})
		}
		wg.Wait()
		close(stop)
		readers.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		require.Empty(t, check.problems)

		byID := make(map[uint64]store.Message)
		for p, msgs := range got {
			require.Len(t, msgs, each)
			for i, m := range msgs {
				// One publisher's messages are in its order.
				require.Equal(t, fmt.Sprintf(`{"p":%d,"i":%d}`, p, i), string(m.Body))
				if i > 0 {
					require.Greater(t, m.ID, msgs[i-1].ID)
				}
				_, dup := byID[m.ID]
				require.False(t, dup, "id %d given twice", m.ID)
				byID[m.ID] = m
			}
		}
		all := history(t, b, app.ID, "hot")
		require.Equal(t, Seq(1, publishers*each), IDs(all))
		for _, m := range all {
			requireMessage(t, byID[m.ID], m)
		}
		topic, err := b.st.GetTopic(b.ctx, app.ID, "hot")
		require.NoError(t, err)
		require.Equal(t, uint64(publishers*each), topic.LastID)
	})

	t.Run("ManyTopics", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		const publishers, topics, rounds = 8, 16, 10
		checks := make([]*callbackCheck, topics)
		for i := range topics {
			createTopic(t, b, app.ID, fmt.Sprintf("t%d", i))
			checks[i] = newCallbackCheck(publishers * rounds)
		}
		errs := make([]error, publishers)
		var wg sync.WaitGroup
		for p := range publishers {
			wg.Go(func() {
				for r := range rounds {
					for i := range topics {
						// Each publisher starts at a different topic.
						ti := (i + p) % topics
						msg, err := b.st.Publish(b.ctx, store.PublishRequest{
							AppID: app.ID, Topic: fmt.Sprintf("t%d", ti),
							Body:          fmt.Appendf(nil, `[%d,%d]`, p, r),
							CommittedFunc: checks[ti].committed,
						})
						if err != nil {
							errs[p] = err
							return
						}
						checks[ti].returned(msg)
					}
				}
			})
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		for i := range topics {
			require.Empty(t, checks[i].problems, "topic t%d", i)
			require.Equal(t, Seq(1, publishers*rounds), IDs(history(t, b, app.ID, fmt.Sprintf("t%d", i))), "topic t%d", i)
		}
	})

	// Publishes to a missing topic, racing publishes to a real one, fail
	// alone: the others get their ids as if the failures never happened.
	t.Run("MissingTopicFailsAlone", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		createTopic(t, b, app.ID, "real")
		const publishers, each = 8, 100

		errs := make([]error, publishers)
		var wg sync.WaitGroup
		for p := range publishers {
			wg.Go(func() {
				topic := "real"
				if p%2 == 1 {
					topic = "missing"
				}
				for range each {
					_, err := b.st.Publish(b.ctx, store.PublishRequest{AppID: app.ID, Topic: topic, Body: []byte(`{}`)})
					switch {
					case topic == "real" && err != nil:
						errs[p] = err
						return
					case topic == "missing" && !errors.Is(err, store.ErrNotFound):
						errs[p] = fmt.Errorf("publish to missing topic: want ErrNotFound, got %w", err)
						return
					}
				}
			})
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		require.Equal(t, Seq(1, publishers/2*each), IDs(history(t, b, app.ID, "real")))
		_, err := b.st.GetTopic(b.ctx, app.ID, "missing")
		requireNotFound(t, err)
	})

	t.Run("PublishRacingTopicDelete", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		createTopic(t, b, app.ID, "flaky")
		const publishers, each, recreations = 4, 100, 5

		errs := make([]error, publishers+1)
		var wg sync.WaitGroup
		for p := range publishers {
			wg.Go(func() {
				for range each {
					_, err := b.st.Publish(b.ctx, store.PublishRequest{AppID: app.ID, Topic: "flaky", Body: []byte(`{}`)})
					if err != nil && !errors.Is(err, store.ErrNotFound) {
						errs[p] = err
						return
					}
				}
			})
		}
		wg.Go(func() {
			for range recreations {
				if err := b.st.DeleteTopic(b.ctx, app.ID, "flaky"); err != nil {
					errs[publishers] = err
					return
				}
				if _, _, err := b.st.CreateTopic(b.ctx, app.ID, "flaky"); err != nil {
					errs[publishers] = err
					return
				}
			}
		})
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}

		topic, err := b.st.GetTopic(b.ctx, app.ID, "flaky")
		require.NoError(t, err)
		msgs := history(t, b, app.ID, "flaky")
		if topic.LastID == 0 {
			require.Empty(t, msgs)
		} else {
			require.Equal(t, Seq(1, topic.LastID), IDs(msgs))
		}
	})
}
