// Package heraldtest starts real Herald servers for tests: on 127.0.0.1:0,
// with a temporary data directory, an admin token, and helpers to create an
// app with keys and topics. It is for tests only.
package heraldtest

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/config"
	"github.com/heraldhq/herald/internal/server"
)

// AdminToken is the admin token of every test server.
const AdminToken = "test-admin-token-0123456789abcdef"

// Server is a running test server.
type Server struct {
	*server.Server
	// URL is the server's base URL, like http://127.0.0.1:41234.
	URL string
	// Config is the configuration it runs with.
	Config config.Config
	// Admin is a client holding the admin token.
	Admin *client.Client
	// HTTP is the HTTP client of Admin and of NewApp's clients: the default
	// one unless UseHTTPClient changed it.
	HTTP *http.Client

	stop func() error
}

// Config returns the configuration of a test server on a fresh data
// directory: the documented defaults, with a fixed admin token, and
// webhooks allowed to reach 127.0.0.0/8, where test receivers listen.
func Config(tb testing.TB) config.Config {
	tb.Helper()
	cfg, err := config.Parse(nil, func(string) string { return "" }, io.Discard)
	require.NoError(tb, err)
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = tb.TempDir()
	cfg.AdminToken = AdminToken
	cfg.ShutdownTimeout = 5 * time.Second
	// Test receivers of webhooks listen on loopback.
	cfg.WebhookAllowNets = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	return cfg
}

// Start runs a server with cfg until the test ends (or Stop).
func Start(tb testing.TB, cfg config.Config) *Server {
	tb.Helper()
	return StartWithLogger(tb, cfg, slog.New(slog.NewTextHandler(tWriter{tb}, &slog.HandlerOptions{Level: slog.LevelWarn})))
}

// StartWithLogger is Start with the server logging to log, for tests that
// look at what the server logs.
func StartWithLogger(tb testing.TB, cfg config.Config, log *slog.Logger) *Server {
	tb.Helper()
	srv, err := server.New(tb.Context(), cfg, log)
	require.NoError(tb, err)
	ctx, cancel := context.WithCancel(context.Background())
	var (
		wg     sync.WaitGroup
		errSrv error
	)
	wg.Go(func() { errSrv = srv.Serve(ctx) })
	var once sync.Once
	s := &Server{
		Server: srv, URL: srv.URL(), Config: cfg,
		Admin: client.New(srv.URL(), cfg.AdminToken), HTTP: http.DefaultClient,
	}
	s.stop = func() error {
		once.Do(func() { cancel(); wg.Wait() })
		return errSrv
	}
	tb.Cleanup(func() { require.NoError(tb, s.stop()) })
	return s
}

// StartDefault runs a server with Config(tb).
func StartDefault(tb testing.TB) *Server {
	tb.Helper()
	return Start(tb, Config(tb))
}

// UseHTTPClient makes Admin and the clients of apps created from now on use
// hc, as tests of TLS or HTTP/2 need.
func (s *Server) UseHTTPClient(hc *http.Client) {
	s.HTTP = hc
	s.Admin = client.New(s.URL, s.Config.AdminToken, client.WithHTTPClient(hc))
}

// Stop shuts the server down gracefully and returns Serve's result.
func (s *Server) Stop() error { return s.stop() }

// Restart stops the server and starts a new one on the same address and
// data directory, as a restart of the process would: clients that
// reconnect on their own find it where it was, with its apps, keys and
// history. The address is free while the server is down, so a test that
// restarts should not run in parallel with tests that bind ports.
func (s *Server) Restart(tb testing.TB) *Server {
	tb.Helper()
	require.NoError(tb, s.Stop(), "stop before restart")
	cfg := s.Config
	cfg.Addr = s.Addr()
	return Start(tb, cfg)
}

// App is an app created for a test, with a client per key.
type App struct {
	ID string
	// Full holds the publish, subscribe and manage scopes.
	Full *client.Client
	// SubscribeOnly holds only the subscribe scope.
	SubscribeOnly *client.Client
	// FullKey and SubscribeKey are the raw keys.
	FullKey, SubscribeKey string
}

// NewApp creates an app and the given topics.
func (s *Server) NewApp(tb testing.TB, topics ...string) App {
	tb.Helper()
	a, err := s.Admin.CreateApp(tb.Context(), "test-app")
	require.NoError(tb, err)
	app := App{ID: a.ID}
	for _, k := range a.Keys {
		if len(k.Scopes) == 1 {
			app.SubscribeKey = k.Key
		} else {
			app.FullKey = k.Key
		}
	}
	require.NotEmpty(tb, app.FullKey)
	require.NotEmpty(tb, app.SubscribeKey)
	app.Full = client.New(s.URL, app.FullKey, client.WithHTTPClient(s.HTTP))
	app.SubscribeOnly = client.New(s.URL, app.SubscribeKey, client.WithHTTPClient(s.HTTP))
	for _, topic := range topics {
		_, _, err := app.Full.CreateTopic(tb.Context(), app.ID, topic)
		require.NoError(tb, err)
	}
	return app
}

type tWriter struct{ tb testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.tb.Log(string(p))
	return len(p), nil
}

// LogBuffer collects a server's log output. It is safe for the server to
// write while the test reads.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
