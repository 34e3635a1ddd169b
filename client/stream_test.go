package client_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/heraldtest"
)

// The start event is not handed out, but its id is kept: a Stream that
// reconnects before its first message resumes from where it started.
func TestStreamKeepsTheStartPositionBeforeTheFirstMessage(t *testing.T) {
	t.Parallel()
	srv := heraldtest.StartDefault(t)
	app := srv.NewApp(t, "t")
	_, err := app.Full.Publish(t.Context(), app.ID, "t", []byte(`"before"`))
	require.NoError(t, err)

	s := app.SubscribeOnly.Stream(t.Context(), app.ID, []string{"t"}, client.StreamOptions{})
	defer s.Close()
	got := make(chan client.Event, 1)
	errs := make(chan error, 1)
	go func() {
		ev, err := s.Next()
		if err != nil {
			errs <- err
			return
		}
		got <- ev
	}()
	require.Eventually(t, func() bool {
		ts, err := app.Full.ListTopics(t.Context(), app.ID)
		require.NoError(t, err)
		return ts[0].Subscribers == 1
	}, time.Minute, 10*time.Millisecond)
	_, err = app.Full.Publish(t.Context(), app.ID, "t", []byte(`"after"`))
	require.NoError(t, err)
	select {
	case ev := <-got:
		require.Equal(t, client.EventMessage, ev.Type, "the start event is not handed out")
		require.Equal(t, "2", ev.Message.ID)
	case err := <-errs:
		require.NoError(t, err)
	}
}
