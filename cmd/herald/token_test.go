package main

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/heraldtest"
)

func TestTokenCmdMintsATokenThatOpensItsStream(t *testing.T) {
	t.Parallel()
	srv := heraldtest.StartDefault(t)
	app := srv.NewApp(t, "orders", "stock")
	getenv := func(string) string { return "" }

	var out, errOut bytes.Buffer
	err := run(t.Context(), []string{"token", "--url", srv.URL, "--token", app.FullKey, "--ttl", "5m", app.ID, "orders"}, getenv, &out, &errOut)
	require.NoError(t, err, errOut.String())
	tok := strings.TrimSpace(out.String())
	require.NotContains(t, tok, "\n", "the token alone on stdout")
	require.Contains(t, errOut.String(), "expires")

	stream := func(topic string) int {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet,
			srv.URL+"/v1/apps/"+app.ID+"/topics/"+topic+"/events?access_token="+url.QueryEscape(tok), nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusOK, stream("orders"))
	require.Equal(t, http.StatusForbidden, stream("stock"))

	err = run(t.Context(), []string{"token", "--url", srv.URL, "--token", app.FullKey, "--ttl", "48h", app.ID, "orders"}, getenv, io.Discard, io.Discard)
	require.ErrorContains(t, err, "at most 24h")
	require.ErrorIs(t, run(t.Context(), []string{"token", "--url", srv.URL, app.ID}, getenv, io.Discard, io.Discard), errUsage)
}
