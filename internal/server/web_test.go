package server_test

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/heraldtest"
)

func startLogged(t *testing.T, level slog.Level, origins ...string) (*heraldtest.Server, *heraldtest.LogBuffer) {
	t.Helper()
	cfg := heraldtest.Config(t)
	cfg.CORSOrigins = origins
	var logs heraldtest.LogBuffer
	srv := heraldtest.StartWithLogger(t, cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: level})))
	return srv, &logs
}

// TestTokensNeverAppearInLogs drives every path a browser token takes, at
// debug level where each request is logged with its query, and checks that
// neither the token nor its signature reaches the log.
func TestTokensNeverAppearInLogs(t *testing.T) {
	t.Parallel()
	srv, logs := startLogged(t, slog.LevelDebug, "https://app.example")
	app := srv.NewApp(t, "a", "b")
	tok, err := app.Full.CreateToken(t.Context(), app.ID, []string{"a"}, "10m")
	require.NoError(t, err)
	base := srv.URL + "/v1/apps/" + app.ID
	q := "access_token=" + url.QueryEscape(tok.Token)

	ok := get(t, http.DefaultClient, base+"/events?topic=a&"+q, http.Header{"Origin": {"https://app.example"}})
	require.Equal(t, http.StatusOK, ok.StatusCode)
	for _, tc := range []struct {
		url    string
		header http.Header
		status int
	}{
		{base + "/topics/b/events?" + q, nil, http.StatusForbidden},
		{base + "/topics/a/events?" + q + "x", nil, http.StatusUnauthorized},
		{base + "/topics/a/events?" + q + "&last_event_id=%0A", nil, http.StatusBadRequest},
		{base + "/topics/nope/events?" + q, nil, http.StatusForbidden},
		{base + "/topics/a/events?" + q + "&%zz", nil, http.StatusOK}, // a query that does not parse
		{base + "/topics/a/events?" + q, http.Header{"Origin": {"https://evil.example"}}, http.StatusOK},
		{base + "/topics/a/events", http.Header{"Cookie": {"herald_token=" + tok.Token + "x"}}, http.StatusUnauthorized},
		{base + "/topics/a/messages?" + q, nil, http.StatusUnauthorized},
		{srv.URL + "/v1/apps/nope/topics/a/events?" + q, nil, http.StatusForbidden},
		{srv.URL + "/v2/nothing?" + q, nil, http.StatusNotFound},
	} {
		resp := get(t, http.DefaultClient, tc.url, tc.header)
		require.Equal(t, tc.status, resp.StatusCode, tc.url)
		resp.Body.Close()
	}
	// A raw request with the token in the request line and a broken header,
	// which net/http itself refuses.
	conn, err := net.Dial("tcp", srv.Addr())
	require.NoError(t, err)
	fmt.Fprintf(conn, "GET /v1/apps/%s/topics/a/events?%s HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", app.ID, q)
	b := make([]byte, 64)
	n, _ := conn.Read(b)
	require.Contains(t, string(b[:n]), "400")
	conn.Close()

	require.Eventually(t, func() bool {
		return strings.Count(logs.String(), "msg=request") >= 12
	}, 5*time.Second, 5*time.Millisecond, "every request is logged at debug level")
	require.NoError(t, srv.Stop())
	out := logs.String()
	require.Contains(t, out, "access_token=REDACTED", "the query is logged, with the token redacted")
	require.Contains(t, out, "origin=https://evil.example", "the refused origin is logged")
	require.NotContains(t, out, tok.Token)
	sig := tok.Token[strings.LastIndex(tok.Token, ".")+1:]
	require.NotContains(t, out, sig, "not even the signature")
	require.NotContains(t, out, app.FullKey)
}

func TestCORSCredentialedOrigin(t *testing.T) {
	t.Parallel()
	srv, logs := startLogged(t, slog.LevelInfo, "https://app.example")
	app := srv.NewApp(t, "t")
	origin := http.Header{"Origin": {"https://app.example"}}

	// A plain request, an error answer and a stream all carry the headers.
	requireCORS := func(resp *http.Response) {
		t.Helper()
		require.Equal(t, "https://app.example", resp.Header.Get("Access-Control-Allow-Origin"))
		require.Equal(t, "true", resp.Header.Get("Access-Control-Allow-Credentials"))
		require.Contains(t, resp.Header.Values("Vary"), "Origin")
		require.Equal(t, "WWW-Authenticate, Idempotent-Replayed", resp.Header.Get("Access-Control-Expose-Headers"))
	}
	requireCORS(get(t, http.DefaultClient, srv.URL+"/healthz", origin))
	unauth := get(t, http.DefaultClient, srv.URL+"/v1/apps/"+app.ID+"/topics", origin)
	require.Equal(t, http.StatusUnauthorized, unauth.StatusCode)
	requireCORS(unauth)

	// HTTP/1.1 streams are written on the hijacked connection: the headers
	// set before the handler must be in the raw response head.
	stream := get(t, http.DefaultClient, srv.URL+"/v1/apps/"+app.ID+"/topics/t/events?access_token="+app.SubscribeKey, origin)
	require.Equal(t, http.StatusOK, stream.StatusCode)
	require.Equal(t, 1, stream.ProtoMajor)
	require.True(t, stream.Close, "Connection: close: the hijacked path wrote this head")
	requireCORS(stream)
	waitSubscribers(t, app, "t", 1)
	_, err := app.Full.Publish(t.Context(), app.ID, "t", []byte(`"cross-origin"`))
	require.NoError(t, err)
	require.Contains(t, nextData(t, client.NewFrameReader(stream.Body)).Data, `"cross-origin"`)

	// The preflight of a publish from the page.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodOptions, srv.URL+"/v1/apps/"+app.ID+"/topics/t/messages", nil)
	require.NoError(t, err)
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	require.Equal(t, "https://app.example", resp.Header.Get("Access-Control-Allow-Origin"))
	require.Equal(t, "true", resp.Header.Get("Access-Control-Allow-Credentials"))
	require.Contains(t, resp.Header.Get("Access-Control-Allow-Methods"), "POST")
	for _, h := range []string{"Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID"} {
		require.Contains(t, resp.Header.Get("Access-Control-Allow-Headers"), h)
	}
	require.Equal(t, "7200", resp.Header.Get("Access-Control-Max-Age"))

	// A refused origin gets no CORS headers, its preflight a 403 that names
	// it, and one warning in the log however often it comes.
	for range 3 {
		resp := get(t, http.DefaultClient, srv.URL+"/healthz", http.Header{"Origin": {"https://evil.example"}})
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
		require.Empty(t, resp.Header.Get("Access-Control-Allow-Credentials"))
	}
	req.Header.Set("Origin", "https://evil.example")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
	require.Contains(t, requireErrorBody(t, resp, http.StatusForbidden, "origin_not_allowed"), "https://evil.example")
	resp.Body.Close()
	require.Equal(t, 1, strings.Count(logs.String(), "origin=https://evil.example"), logs.String())
	require.Contains(t, logs.String(), "level=WARN")

	// Same-origin requests (browsers send Origin on a POST) are not CORS:
	// no headers, and nothing logged.
	_ = get(t, http.DefaultClient, srv.URL+"/healthz", http.Header{"Origin": {srv.URL}})
	require.NotContains(t, logs.String(), "origin="+srv.URL)
}

func TestCORSAnyOriginIsNeverCredentialed(t *testing.T) {
	t.Parallel()
	srv, logs := startLogged(t, slog.LevelInfo, "*")
	resp := get(t, http.DefaultClient, srv.URL+"/healthz", http.Header{"Origin": {"https://anyone.example"}})
	require.Equal(t, "*", resp.Header.Get("Access-Control-Allow-Origin"))
	require.Empty(t, resp.Header.Get("Access-Control-Allow-Credentials"), "a browser refuses * with credentials; never claim them")
	require.NotContains(t, logs.String(), "refused")

	// Without --cors-origins, a cross-origin request gets nothing, and the
	// log says how to allow it.
	off, offLogs := startLogged(t, slog.LevelInfo)
	resp = get(t, http.DefaultClient, off.URL+"/healthz", http.Header{"Origin": {"https://app.example"}})
	require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
	require.Empty(t, resp.Header.Values("Vary"))
	require.Contains(t, offLogs.String(), "set --cors-origins")
}
