package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/dashboard"
	"github.com/heraldhq/herald/internal/httpapi"
)

// The routes below need nothing from the API's dependencies, so a bare
// API over real HTTP is enough.
func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(httpapi.New(httpapi.Config{}))
	t.Cleanup(srv.Close)
	return srv
}

func fetch(t *testing.T, url, accept string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	require.NoError(t, err)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

func TestRootServesTheDashboardToBrowsers(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	resp, body := fetch(t, srv.URL+"/", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	require.Equal(t, dashboard.ContentSecurityPolicy, resp.Header.Get("Content-Security-Policy"))
	require.Contains(t, resp.Header.Values("Vary"), "Accept", "caches must keep the page and the text apart")
	require.Contains(t, body, "Herald dashboard")
}

func TestRootAnswersOtherClientsInPlainText(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	for _, accept := range []string{"", "*/*", "application/json"} {
		resp, body := fetch(t, srv.URL+"/", accept)
		require.Equal(t, http.StatusOK, resp.StatusCode, accept)
		require.Equal(t, "text/plain; charset=utf-8", resp.Header.Get("Content-Type"), accept)
		require.Contains(t, resp.Header.Values("Vary"), "Accept")
		require.Contains(t, body, "Herald is running.", accept)
		require.Empty(t, resp.Header.Get("Content-Security-Policy"))
	}
}

func TestDashboardAssetsAndTheirErrors(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	resp, _ := fetch(t, srv.URL+"/dashboard/app.js", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/javascript; charset=utf-8", resp.Header.Get("Content-Type"))

	// A missing asset gets the API's one error format.
	resp, body := fetch(t, srv.URL+"/dashboard/nope.js", "")
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var env struct{ Error struct{ Code string } }
	require.NoError(t, json.Unmarshal([]byte(body), &env))
	require.Equal(t, "route_not_found", env.Error.Code)

	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/dashboard/app.js", nil)
	require.NoError(t, err)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "the dashboard is GET only; other methods fall through to route_not_found")
}
