package clustertest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/broadcast"
	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/internal/store/postgres"
)

// TestSlowBarrierDoesNotHoldPublishes: while a drop waits at its barrier
// (for as long as a busy machine makes it), the other cases of the suite
// publish on. Were the barrier under the pair's lock, every one of their
// Publish calls would wait for it and fail as "Publish blocked", blaming a
// broadcaster that never blocked.
func TestSlowBarrierDoesNotHoldPublishes(t *testing.T) {
	t.Parallel()
	st, err := postgres.Open(t.Context(), pgtest.NewDatabase(t), postgres.Options{MaxConns: 4})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	mem, err := broadcast.NewMemory(broadcast.MemoryOptions{})
	require.NoError(t, err)
	node := &Node{Store: st, BC: mem}

	entered, release := make(chan struct{}), make(chan struct{})
	p := &pair{t: t, pub: node, sub: node, barrier: func(context.Context) {
		close(entered)
		<-release
	}}
	EnsureTopic(t, st, "app", "dropped")
	dropped := make(chan struct{})
	go func() {
		defer close(dropped)
		p.DropTopic(t.Context(), "app", "dropped")
	}()
	waitFor(t, entered, "the drop did not reach its barrier")

	published := make(chan struct{})
	go func() {
		defer close(published)
		p.Publish(t.Context(), &broadcast.Event{App: "app", Topic: "other", ID: 1, Message: []byte(`1`)})
	}()
	select {
	case <-published:
		close(release)
	case <-time.After(CatchUp): // a hang guard only
		close(release)
		<-published // before the store closes under it
		<-dropped
		require.FailNow(t, "Publish waited for another case's barrier")
	}
	waitFor(t, dropped, "the drop did not return after its barrier")

	msgs, err := st.History(t.Context(), "app", "other", 0, 10)
	require.NoError(t, err)
	require.Len(t, msgs, 1, "the publish made during the barrier is stored")
}

func waitFor(t *testing.T, ch <-chan struct{}, msg string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(CatchUp): // a hang guard only
		require.FailNow(t, msg)
	}
}
