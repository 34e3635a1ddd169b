package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/heraldtest"
	"github.com/heraldhq/herald/internal/pgtest"
)

// TestPublishCommitUnknown loses the connection of a publish's COMMIT after
// Postgres received it, and keeps the node from reaching Postgres while it
// asks what became of the commit: the publish is answered 503
// commit_unknown with Retry-After, saying a retry with the Idempotency-Key
// is safe. Once Postgres is back, that retry is answered with the message
// stored in doubt, which the topic holds once.
func TestPublishCommitUnknown(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	proxy := pgtest.NewProxy(t, dbURL)
	cfg := heraldtest.Config(t)
	cfg.DatabaseURL = proxy.URL(dbURL)
	cfg.WebhookConcurrency = 0 // no dispatcher's transactions besides the publish
	// The store asks Postgres what became of the commit for as long as
	// this before it answers commit_unknown (30 s by default).
	cfg.DatabaseWriteTimeout = 2 * time.Second
	srv := heraldtest.Start(t, cfg)
	app := srv.NewApp(t, "t")

	const body = `{"order":"in doubt"}`
	tripped := proxy.ArmCommit(pgtest.BlackoutAfterCommit, `"in doubt"`)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost,
		srv.URL+"/v1/apps/"+app.ID+"/topics/t/messages", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+app.FullKey)
	req.Header.Set("Idempotency-Key", "order-1")
	// The hang guard is far past the write timeout.
	hc := &http.Client{Timeout: 2 * time.Minute}
	resp, err := hc.Do(req)
	require.NoError(t, err)
	answer, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	requireTripped(t, tripped)
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "%s", answer)
	require.NotEmpty(t, resp.Header.Get("Retry-After"))
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	require.NoError(t, json.Unmarshal(answer, &e))
	require.Equal(t, "commit_unknown", e.Error.Code)
	require.Contains(t, e.Error.Message, "Idempotency-Key")

	proxy.Refuse(false)
	// The retry a client makes on 503: the node may take a moment to
	// reconnect, which it answers with 503 too.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var (
		msg      client.Message
		replayed bool
	)
	for {
		msg, replayed, err = app.Full.PublishIdempotent(ctx, app.ID, "t", "order-1", []byte(body))
		var apiErr *client.Error
		if err == nil || !errors.As(err, &apiErr) || apiErr.Status != http.StatusServiceUnavailable {
			break
		}
		require.NoError(t, ctx.Err(), "the node did not come back: %v", err)
	}
	require.NoError(t, err)
	require.True(t, replayed, "the message was stored in doubt: the retry gets it")
	msgs, err := app.Full.History(t.Context(), app.ID, "t", "", 100)
	require.NoError(t, err)
	require.Len(t, msgs, 1, "stored once")
	require.Equal(t, msg.ID, msgs[0].ID)
	require.JSONEq(t, body, string(msgs[0].Message))
}

// requireTripped checks that the proxy made its cut.
func requireTripped(t *testing.T, tripped <-chan struct{}) {
	t.Helper()
	select {
	case <-tripped:
	default:
		require.Fail(t, "the proxy never cut the COMMIT")
	}
}
