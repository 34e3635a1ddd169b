package broadcast_test

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/broadcast"
)

func TestEventFrame(t *testing.T) {
	t.Parallel()

	t.Run("EncodesOnceAcrossConcurrentCallers", func(t *testing.T) {
		t.Parallel()
		const callers = 64
		ev := &broadcast.Event{App: "app", Topic: "topic", ID: 7, Message: []byte(`{"a":1}`)}
		var calls atomic.Int32
		encode := func(ev *broadcast.Event) []byte {
			calls.Add(1)
			return append([]byte("data: "), ev.Message...)
		}

		start := make(chan struct{})
		frames := make([][]byte, callers)
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				<-start
				frames[i] = ev.Frame(encode)
			})
		}
		close(start)
		wg.Wait()

		require.Equal(t, int32(1), calls.Load(), "encode calls")
		for _, f := range frames {
			require.Equal(t, `data: {"a":1}`, string(f))
			require.Same(t, &frames[0][0], &f[0], "every caller gets the same bytes")
		}
		require.Equal(t, `data: {"a":1}`, string(ev.Frame(encode)))
		require.Equal(t, int32(1), calls.Load(), "encode calls")
	})
}
