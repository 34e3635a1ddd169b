package hostile_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/heraldtest"
	"github.com/heraldhq/herald/internal/hostile"
)

// The helpers below work in a test's Cleanup too, where t.Context() has
// ended: they use it without its cancellation.

// patience bounds every wait of the suite. The machine running it may be
// busy: the suite asserts that others are answered, never how fast.
const patience = 90 * time.Second

// requireHealthy polls /healthz, each GET on a fresh connection, until one
// answers 200.
func requireHealthy(t *testing.T, srv *heraldtest.Server) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		_, status, err := hostile.Time(context.WithoutCancel(t.Context()), srv.URL+"/healthz", patience)
		if err == nil && status == http.StatusOK {
			return
		}
		require.True(t, time.Now().Before(deadline), "/healthz did not answer 200 within %s: %d %v", patience, status, err)
	}
}

// requirePublishes publishes body with the app's key, retrying transport
// errors, until it is accepted, and returns its id.
func requirePublishes(t *testing.T, app heraldtest.App, topic, body string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), patience)
	defer cancel()
	for {
		m, err := app.Full.Publish(ctx, app.ID, topic, []byte(body))
		if err == nil {
			return m.ID
		}
		var apiErr *client.Error
		require.NotErrorAs(t, err, &apiErr, "the publish was refused")
		require.NoError(t, ctx.Err(), "a valid publish did not get through: %v", err)
	}
}

// requireHistory asserts the topic holds exactly these messages, in order.
func requireHistory(t *testing.T, app heraldtest.App, topic string, bodies ...string) {
	t.Helper()
	msgs, err := app.Full.History(context.WithoutCancel(t.Context()), app.ID, topic, "", 1000)
	require.NoError(t, err)
	got := make([]string, len(msgs))
	for i, m := range msgs {
		got[i] = string(m.Message)
	}
	if bodies == nil {
		bodies = []string{}
	}
	require.Equal(t, bodies, got)
}
