package limit_test

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/limit"
)

func TestCounterHoldsAtMostMaxPerKey(t *testing.T) {
	t.Parallel()
	var c limit.Counter
	require.True(t, c.TryAcquire("a", 2))
	require.True(t, c.TryAcquire("a", 2))
	require.False(t, c.TryAcquire("a", 2), "a third slot past a max of 2")
	require.True(t, c.TryAcquire("b", 2), "keys are counted apart")
	c.Release("a")
	require.True(t, c.TryAcquire("a", 2), "a released slot can be taken again")
	require.Equal(t, 2, c.Held("a"))
	for range 100 {
		require.True(t, c.TryAcquire("u", 0), "0 is unlimited")
	}
}

func TestCounterIsSafeForConcurrentUse(t *testing.T) {
	t.Parallel()
	var (
		c  limit.Counter
		wg sync.WaitGroup
		mu sync.Mutex
		ok int
	)
	for range 50 {
		wg.Go(func() {
			if c.TryAcquire("k", 10) {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.Equal(t, 10, ok)
	require.Equal(t, 10, c.Held("k"))
}
