package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/broadcast"
	"github.com/heraldhq/herald/internal/httpapi"
	"github.com/heraldhq/herald/internal/limit"
	"github.com/heraldhq/herald/internal/pubsub"
	"github.com/heraldhq/herald/internal/sse"
	"github.com/heraldhq/herald/internal/stats"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/sqlite"
	"github.com/heraldhq/herald/internal/webhook"
)

// The concrete types the composition root passes satisfy the API's
// interfaces.
var (
	_ httpapi.Publisher      = (*pubsub.Service)(nil)
	_ httpapi.TopicService   = (*pubsub.Service)(nil)
	_ httpapi.AppService     = (*pubsub.Service)(nil)
	_ httpapi.AppGetter      = (*sqlite.Store)(nil)
	_ httpapi.StreamServer   = (*sse.Handler)(nil)
	_ httpapi.KeyVerifier    = (*auth.Verifier)(nil)
	_ httpapi.TokenSigner    = (*auth.TokenSigner)(nil)
	_ httpapi.TriggerManager = (*webhook.Triggers)(nil)
	_ httpapi.StatsRecorder  = (*stats.Recorder)(nil)
	_ httpapi.AppLimiter     = (*limit.Apps)(nil)
)

// testTopic is the topic every test app has.
const testTopic = "t"

// testBundle is an API over real parts (a SQLite store in a temp dir, the
// in-process broadcaster, the pub/sub service, the SSE handler, the key
// verifier and the token signer) served on loopback, with two apps and
// their credentials.
type testBundle struct {
	url   string
	api   *httpapi.API // what url serves
	svc   *pubsub.Service
	admin string
	// app is the app the tests call; other is a second app.
	app, other string
	// full holds every scope of app; sub only subscribe; otherKey is a
	// full key of other.
	full, sub, otherKey string
	// token is a browser token of app for testTopic, minted with full;
	// otherToken one of other.
	token, otherToken string
	tokens            *auth.TokenSigner
	streams           *sse.Handler
}

// apiOptions changes what setup builds, for the tests that inject a
// fault: wrapStore stands in front of the store the service writes to, and
// config edits the API's configuration last.
type apiOptions struct {
	wrapStore func(store.Store) store.Store
	config    func(*httpapi.Config)
}

func setup(tb testing.TB, opts apiOptions) *testBundle {
	tb.Helper()
	ctx := tb.Context()
	st, err := sqlite.Open(ctx, filepath.Join(tb.TempDir(), "herald.db"), sqlite.Options{})
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, st.Close()) })
	bc, err := broadcast.NewMemory(broadcast.MemoryOptions{})
	require.NoError(tb, err)
	var pubStore store.Store = st
	if opts.wrapStore != nil {
		pubStore = opts.wrapStore(st)
	}
	svc, err := pubsub.New(pubStore, bc, pubsub.Options{})
	require.NoError(tb, err)
	streams := sse.New(bc, st, sse.Options{})
	tb.Cleanup(func() {
		// A hang guard only: every stream has ended with its client.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(tb, streams.Close(ctx))
	})
	tokens, err := auth.NewTokenSigner([]byte(strings.Repeat("k", auth.MinTokenKeyBytes)))
	require.NoError(tb, err)
	verifier := auth.NewVerifier(st, 0)

	b := &testBundle{svc: svc, admin: "admin-" + auth.NewID(), tokens: tokens, streams: streams}
	b.app, b.full, b.sub = newApp(tb, svc)
	b.other, b.otherKey, _ = newApp(tb, svc)
	b.token = b.mint(tb, verifier, b.full, b.app, time.Now())
	b.otherToken = b.mint(tb, verifier, b.otherKey, b.other, time.Now())

	cfg := httpapi.Config{
		Publisher: svc, Topics: svc, Apps: svc, AppGetter: st,
		Streams: streams, Keys: verifier, KeyStore: st, Tokens: tokens,
		Admin: auth.NewAdminToken(b.admin),
	}
	if opts.config != nil {
		opts.config(&cfg)
	}
	b.api = httpapi.New(cfg)
	srv := httptest.NewServer(b.api)
	tb.Cleanup(srv.Close)
	b.url = srv.URL
	return b
}

// newApp creates an app with testTopic and returns its id, its full key
// and its subscribe-only key.
func newApp(tb testing.TB, svc *pubsub.Service) (id, full, sub string) {
	tb.Helper()
	out, err := svc.CreateApp(tb.Context(), "app")
	require.NoError(tb, err)
	for _, k := range out.Keys {
		if len(k.Scopes) == 1 {
			sub = k.Key
		} else {
			full = k.Key
		}
	}
	require.NotEmpty(tb, full)
	require.NotEmpty(tb, sub)
	_, _, err = svc.CreateTopic(tb.Context(), out.App.ID, testTopic)
	require.NoError(tb, err)
	return out.App.ID, full, sub
}

// mint returns a browser token of app for testTopic, minted with key at
// now, valid for a minute.
func (b *testBundle) mint(tb testing.TB, v *auth.Verifier, key, app string, now time.Time) string {
	tb.Helper()
	k, err := v.Verify(tb.Context(), key)
	require.NoError(tb, err)
	tok, _, err := b.tokens.MintForKey(k.ID, app, []string{testTopic}, time.Minute, now)
	require.NoError(tb, err)
	return tok
}

// answer is what a test reads of a response.
type answer struct {
	status        int
	code, message string
	index         *int
	header        http.Header
	// body is the whole body, but for a stream.
	body []byte
}

// do sends a request with the given body (nil for none) and edits, and
// returns the answer. A stream's answer is read up to its headers only:
// its body never ends.
func (b *testBundle) do(t *testing.T, method, path string, body io.Reader, edit func(*http.Request)) answer {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel() // ends a stream, whose body is never read to its end
	req, err := http.NewRequestWithContext(ctx, method, b.url+path, body)
	require.NoError(t, err)
	if edit != nil {
		edit(req)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out := answer{status: resp.StatusCode, header: resp.Header}
	if resp.Header.Get("Content-Type") != "application/json" {
		return out
	}
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	out.body = raw
	var env struct {
		Error *struct {
			Code, Message string
			Index         *int
		}
	}
	require.NoError(t, json.Unmarshal(raw, &env), "%s", raw)
	if env.Error != nil {
		out.code, out.message, out.index = env.Error.Code, env.Error.Message, env.Error.Index
	}
	return out
}

// bearer sets the Authorization header to "Bearer cred".
func bearer(cred string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+cred) }
}

// hold opens a stream with key and keeps it open until the test ends.
func (b *testBundle) hold(t *testing.T, path, key string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.url+path, nil)
	require.NoError(t, err)
	bearer(key)(req)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() {
		cancel()
		resp.Body.Close()
	})
	require.Equal(t, http.StatusOK, resp.StatusCode)
}
