package hostile_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/heraldtest"
)

// TestDeepJSONIsRefusedAndWhatIsTakenDecodes: a 10,000-deep array gets
// 400 message_too_deep and stores nothing; a message at the default limit
// (64) is taken, and the Go SDK decodes it from history and from a stream.
func TestDeepJSONIsRefusedAndWhatIsTakenDecodes(t *testing.T) {
	t.Parallel()
	srv := heraldtest.StartDefault(t)
	app := srv.NewApp(t, "t")
	nest := func(n int) string { return strings.Repeat("[", n) + "1" + strings.Repeat("]", n) }

	for _, n := range []int{65, 10_000, 100_000} {
		_, err := app.Full.Publish(t.Context(), app.ID, "t", []byte(nest(n)))
		var apiErr *client.Error
		require.True(t, errors.As(err, &apiErr), "%d deep: %v", n, err)
		require.Equal(t, http.StatusBadRequest, apiErr.Status)
		require.Equal(t, "message_too_deep", apiErr.Code)
		require.Contains(t, apiErr.Message, "64")
	}
	requireHistory(t, app, "t")

	ok := nest(64)
	requirePublishes(t, app, "t", ok)
	requireHistory(t, app, "t", ok)
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	defer cancel()
	stream := app.SubscribeOnly.Stream(ctx, app.ID, []string{"t"}, client.StreamOptions{LastEventID: "0"})
	defer stream.Close()
	ev, err := stream.Next()
	require.NoError(t, err)
	require.JSONEq(t, ok, string(ev.Message.Message))
}
