package webhook_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/webhook"
)

// TestCreateRacingPastTheTopicCap races twice MaxTriggersPerTopic creates
// on one topic: exactly MaxTriggersPerTopic are stored, and every other
// create is refused with ErrTooManyTriggers. A count read before the create
// let racing creates pass the cap together.
func TestCreateRacingPastTheTopicCap(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(t *testing.T) outboxStore) {
		b := setup(t, open)
		var ids atomic.Int64
		trs, err := webhook.NewTriggers(webhook.TriggersOptions{
			Store: b.st, Guard: webhook.NewGuard(loopback()),
			NewIDFunc: func() string { return fmt.Sprintf("trg_%d", ids.Add(1)) },
		})
		require.NoError(t, err)
		t.Cleanup(trs.Close)

		const tries = 2 * webhook.MaxTriggersPerTopic
		var (
			wg               sync.WaitGroup
			created, refused atomic.Int64
			mu               sync.Mutex
			others           []error
		)
		start := make(chan struct{})
		for range tries {
			wg.Go(func() {
				<-start
				_, err := trs.Create(t.Context(), b.app, b.topic, "http://127.0.0.1:9/hook", "")
				switch {
				case err == nil:
					created.Add(1)
				case errors.Is(err, webhook.ErrTooManyTriggers):
					refused.Add(1)
				default:
					mu.Lock()
					others = append(others, err)
					mu.Unlock()
				}
			})
		}
		close(start)
		wg.Wait()
		require.Empty(t, others)
		require.EqualValues(t, webhook.MaxTriggersPerTopic, created.Load())
		require.EqualValues(t, tries-webhook.MaxTriggersPerTopic, refused.Load())
		ts, err := trs.List(t.Context(), b.app, b.topic)
		require.NoError(t, err)
		require.Len(t, ts, webhook.MaxTriggersPerTopic)
	})
}
