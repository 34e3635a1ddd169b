package browser_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/heraldtest"
)

// The cross-origin case needs pages of origins other than Herald's: these
// are real HTTP servers, as an app's own web server would be.
//
//   - allowed, on 127.0.0.1 with a port of its own: another origin than
//     Herald's (the port differs), but the same site, like app.example.com
//     and herald.example.com. The cors server lists it in CORSOrigins. It
//     is also the app's backend: POST /backend/login sets the browser
//     token cookie of the README's cookie alternative.
//   - refused, on 127.0.0.2 (all of 127.0.0.0/8 is loopback on Linux):
//     another site altogether, listed nowhere.

// pageHTML is the page the cases open on these origins: a document of the
// origin, with no script of its own.
const pageHTML = "<!doctype html><meta charset=utf-8><title>a page of another origin</title><p>Herald browser tests\n"

// tokenCookie is the cookie Herald reads a browser token from, as the
// README names it.
const tokenCookie = "herald_token"

// pageServer is a page origin's web server, bound but not yet serving, so
// that Herald can be configured with its origin first.
type pageServer struct {
	srv    *httptest.Server
	origin string
}

func newPageServer(t *testing.T, addr string, h http.Handler) *pageServer {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err, "listen on %s for a page origin (the browser tests need loopback addresses beyond 127.0.0.1, as Linux has)", addr)
	_ = srv.Listener.Close() // the one httptest bound on 127.0.0.1:0
	srv.Listener = ln
	t.Cleanup(srv.Close)
	return &pageServer{srv: srv, origin: "http://" + ln.Addr().String()}
}

// pageMux serves the page, and when app is set the backend's login.
type pageMux struct {
	app *heraldtest.App // set before the server starts, never after
}

func (m *pageMux) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/":
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, pageHTML)
	case r.Method == http.MethodPost && r.URL.Path == "/backend/login" && m.app != nil:
		m.login(w, r)
	default:
		http.NotFound(w, r)
	}
}

// login is what the README's cookie alternative asks of the app's backend:
// mint a browser token for the topics this user may follow (?topic=) with
// its manage key, and set it as an HttpOnly cookie scoped to the app's
// routes. The page never sees the token. No Domain (the host is an IP
// address, and a host-only cookie is sent to every port of it) and no
// Secure (plain HTTP here).
func (m *pageMux) login(w http.ResponseWriter, r *http.Request) {
	tok, err := m.app.Full.CreateToken(r.Context(), m.app.ID, r.URL.Query()["topic"], "5m")
	if err != nil {
		http.Error(w, "mint a browser token: "+err.Error(), http.StatusBadGateway)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     tokenCookie,
		Value:    tok.Token,
		Path:     "/v1/apps/" + m.app.ID + "/",
		MaxAge:   int(time.Until(tok.ExpiresAt) / time.Second),
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
	})
	w.WriteHeader(http.StatusNoContent)
}

// startCORS starts the page origins and a Herald server whose CORSOrigins
// lists the allowed one, logging every request (debug, JSON) to the
// returned buffer, which /log?server=cors hands to the cases.
func startCORS(t *testing.T) (cors *heraldtest.Server, app heraldtest.App, logs *logBuffer, pages map[string]string) {
	t.Helper()
	allowedMux := &pageMux{}
	allowed := newPageServer(t, "127.0.0.1:0", allowedMux)
	refused := newPageServer(t, "127.0.0.2:0", &pageMux{})

	cfg := heraldtest.Config(t)
	cfg.CORSOrigins = []string{allowed.origin}
	logs = &logBuffer{}
	cors = heraldtest.StartWithLogger(t, cfg, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log of the cors server:\n%s", logs.String())
		}
	})
	app = cors.NewApp(t)

	allowedMux.app = &app
	allowed.srv.Start()
	refused.srv.Start()
	return cors, app, logs, map[string]string{"allowed": allowed.origin + "/", "refused": refused.origin + "/"}
}

// logBuffer keeps what a server logs, one JSON record per line.
type logBuffer struct {
	mu    sync.Mutex
	lines []json.RawMessage // guarded by mu
}

// Write takes one record: slog's handlers write each in one call.
func (b *logBuffer) Write(p []byte) (int, error) {
	line := json.RawMessage(strings.TrimSpace(string(p)))
	if !json.Valid(line) {
		return 0, fmt.Errorf("log record is not JSON: %q", p)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lines = append(b.lines, line)
	return len(p), nil
}

func (b *logBuffer) records() []json.RawMessage {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]json.RawMessage{}, b.lines...)
}

func (b *logBuffer) String() string {
	var sb strings.Builder
	for _, l := range b.records() {
		sb.Write(l)
		sb.WriteByte('\n')
	}
	return sb.String()
}
