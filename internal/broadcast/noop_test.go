package broadcast_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/broadcast"
)

func TestNoop(t *testing.T) {
	t.Parallel()

	t.Run("ReceivesNothingAndEndsOnCancel", func(t *testing.T) {
		t.Parallel()
		var b broadcast.Broadcaster = broadcast.Noop{}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		wake := make(chan struct{}, 1)
		sub, err := b.Subscribe(ctx, "app", "topic", broadcast.WakeChan(wake))
		require.NoError(t, err)

		b.Publish(ctx, &broadcast.Event{App: "app", Topic: "topic", ID: 1, Message: []byte(`1`)})
		b.DropTopic(ctx, "app", "topic")
		evs, missed, err := sub.Receive(nil)
		require.NoError(t, err)
		require.Empty(t, evs)
		require.Zero(t, missed)
		select {
		case <-wake:
			require.Fail(t, "woken before the end")
		default:
		}

		cancel()
		select {
		case <-wake:
		case <-time.After(10 * time.Second):
			require.FailNow(t, "no wake after cancel")
		}
		evs, missed, err = sub.Receive(nil)
		require.ErrorIs(t, err, broadcast.ErrClosed)
		require.Empty(t, evs)
		require.Zero(t, missed)
	})
}
