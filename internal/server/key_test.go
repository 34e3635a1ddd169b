package server_test

import (
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/heraldtest"
)

// send sends a request with a bearer token and a raw body, and returns the
// response, closed at the end of the test.
func send(t *testing.T, method, u, token, body string) *http.Response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, u, rd)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// nextNamed reads frames until one of the named type arrives (skipping
// id-only frames and messages) and returns it.
func nextNamed(t *testing.T, r *client.FrameReader, typ string) client.Frame {
	t.Helper()
	for {
		f, err := r.Next()
		require.NoError(t, err, "waiting for event %q", typ)
		if f.Type == typ {
			return f
		}
	}
}

func TestKeyLifecycle(t *testing.T) {
	t.Parallel()
	srv := heraldtest.StartDefault(t)
	app := srv.NewApp(t, "orders")
	other := srv.NewApp(t, "orders")
	ctx := t.Context()

	// The admin token sees the app's first two keys, without secrets.
	keys, err := srv.Admin.ListKeys(ctx, app.ID)
	require.NoError(t, err)
	require.Len(t, keys, 2)
	for _, k := range keys {
		require.Empty(t, k.Key, "a listed key has no secret")
		require.NotEmpty(t, k.ID)
		require.True(t, strings.Contains(app.FullKey, k.ID) || strings.Contains(app.SubscribeKey, k.ID))
	}
	resp := send(t, http.MethodGet, srv.URL+"/v1/apps/"+app.ID+"/keys", app.FullKey, "")
	body, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NotContains(t, string(body), strings.Split(app.FullKey, "_")[2], "never the secret")

	// A manage key issues a key with scopes it holds; the key works once.
	pub, err := app.Full.CreateKey(ctx, app.ID, []string{"publish", "subscribe", "publish"})
	require.NoError(t, err)
	require.Equal(t, []string{"publish", "subscribe"}, pub.Scopes, "duplicates dropped, order kept")
	require.True(t, strings.HasPrefix(pub.Key, "hk_"+pub.ID+"_"))
	pubClient := client.New(srv.URL, pub.Key)
	_, err = pubClient.Publish(ctx, app.ID, "orders", []byte(`{"n":1}`))
	require.NoError(t, err)
	_, err = pubClient.ListTopics(ctx, app.ID)
	requireAPIError(t, err, http.StatusForbidden, "forbidden")

	// A key with only the manage scope may not hand out publish.
	mgr, err := srv.Admin.CreateKey(ctx, app.ID, []string{"manage"})
	require.NoError(t, err)
	mgrClient := client.New(srv.URL, mgr.Key)
	_, err = mgrClient.CreateKey(ctx, app.ID, []string{"manage", "publish"})
	requireAPIError(t, err, http.StatusForbidden, "forbidden")
	_, err = mgrClient.CreateKey(ctx, app.ID, []string{"manage"})
	require.NoError(t, err)
	// A subscribe-only key manages nothing.
	_, err = app.SubscribeOnly.ListKeys(ctx, app.ID)
	requireAPIError(t, err, http.StatusForbidden, "forbidden")

	// Another app's key is refused; another app's key id is not found.
	_, err = client.New(srv.URL, other.FullKey).ListKeys(ctx, app.ID)
	requireAPIError(t, err, http.StatusForbidden, "forbidden")
	err = other.Full.RevokeKey(ctx, other.ID, pub.ID)
	requireAPIError(t, err, http.StatusNotFound, "key_not_found")

	// Bad input.
	base := srv.URL + "/v1/apps/" + app.ID + "/keys"
	for _, tc := range []struct{ body, code string }{
		{`{"scopes":`, "invalid_request"},
		{`{"scopes":[]}`, "invalid_request"},
		{`{"scopes":["admin"]}`, "invalid_request"},
		{`{"scopes":["publish\u0000"]}`, "invalid_request"},
		{`{"scopes":["publish"],"extra":1}`, "invalid_request"},
		{`["publish"]`, "invalid_request"},
		{`{"scopes":["` + strings.Repeat("é", 2<<20) + `"]}`, "invalid_request"},
	} {
		requireErrorBody(t, send(t, http.MethodPost, base, app.FullKey, tc.body), http.StatusBadRequest, tc.code)
	}
	requireErrorBody(t, send(t, http.MethodDelete, base+"/nope", app.FullKey, ""), http.StatusNotFound, "key_not_found")
	requireErrorBody(t, send(t, http.MethodDelete, base+"/%C3%28%00", app.FullKey, ""), http.StatusNotFound, "key_not_found")
	requireErrorBody(t, send(t, http.MethodGet, srv.URL+"/v1/apps/nope/keys", heraldtest.AdminToken, ""), http.StatusNotFound, "app_not_found")

	// Revocation: a stream opened with the key, and one opened with a
	// browser token it minted, end with key_revoked; both credentials are
	// refused from then on, on this node at once.
	sub, err := app.Full.CreateKey(ctx, app.ID, []string{"subscribe", "manage"})
	require.NoError(t, err)
	subClient := client.New(srv.URL, sub.Key)
	tok, err := subClient.CreateToken(ctx, app.ID, []string{"orders"}, "1h")
	require.NoError(t, err)
	keyStream, r1 := openStream(t, srv.URL+"/v1/apps/"+app.ID+"/topics/orders/events", sub.Key, "")
	require.Equal(t, http.StatusOK, r1.StatusCode)
	r2 := send(t, http.MethodGet, srv.URL+"/v1/apps/"+app.ID+"/topics/orders/events?access_token="+url.QueryEscape(tok.Token), "", "")
	require.Equal(t, http.StatusOK, r2.StatusCode)
	tokStream := client.NewFrameReader(r2.Body)
	waitSubscribers(t, app, "orders", 2)

	require.NoError(t, app.Full.RevokeKey(ctx, app.ID, sub.ID))
	for _, s := range []*client.FrameReader{keyStream, tokStream} {
		f := nextNamed(t, s, "key_revoked")
		require.JSONEq(t, `{"key":"`+sub.ID+`"}`, f.Data)
		_, err := s.Next()
		require.Error(t, err, "the stream ends after key_revoked")
	}
	_, err = subClient.ListKeys(ctx, app.ID)
	requireAPIError(t, err, http.StatusUnauthorized, "unauthenticated")
	msg := requireErrorBody(t, send(t, http.MethodGet, srv.URL+"/v1/apps/"+app.ID+"/topics/orders/events?access_token="+url.QueryEscape(tok.Token), "", ""),
		http.StatusUnauthorized, "token_invalid")
	require.Contains(t, msg, "revoked")
	err = app.Full.RevokeKey(ctx, app.ID, sub.ID)
	requireAPIError(t, err, http.StatusNotFound, "key_not_found")

	keys, err = app.Full.ListKeys(ctx, app.ID)
	require.NoError(t, err)
	ids := make([]string, 0, len(keys))
	for _, k := range keys {
		ids = append(ids, k.ID)
	}
	require.NotContains(t, ids, sub.ID)
	require.Contains(t, ids, pub.ID)
	require.Len(t, keys, 5, "two first keys, pub, mgr and the key mgr made")

	// Tokens minted with the admin token name no key and keep working.
	adminTok, err := srv.Admin.CreateToken(ctx, app.ID, []string{"orders"}, "1h")
	require.NoError(t, err)
	r3 := send(t, http.MethodGet, srv.URL+"/v1/apps/"+app.ID+"/topics/orders/events?access_token="+url.QueryEscape(adminTok.Token), "", "")
	require.Equal(t, http.StatusOK, r3.StatusCode)
}

// TestKeyLastUsedSurvivesRestart: a key's use is written on the way out at
// the latest, to the minute, and only for keys that were used.
func TestKeyLastUsedSurvivesRestart(t *testing.T) {
	srv := heraldtest.StartDefault(t)
	app := srv.NewApp(t, "orders")
	before := time.Now().UTC().Truncate(time.Minute)
	_, err := app.Full.Publish(t.Context(), app.ID, "orders", []byte(`1`))
	require.NoError(t, err)

	srv = srv.Restart(t)
	keys, err := srv.Admin.ListKeys(t.Context(), app.ID)
	require.NoError(t, err)
	require.Len(t, keys, 2)
	for _, k := range keys {
		if strings.Contains(app.FullKey, k.ID) {
			require.NotNil(t, k.LastUsedAt, "the full key was used")
			require.False(t, k.LastUsedAt.Before(before))
			require.Equal(t, k.LastUsedAt.Truncate(time.Minute), *k.LastUsedAt, "to the minute")
		} else {
			require.Nil(t, k.LastUsedAt, "the subscribe key was never used")
		}
	}
}

// TestClusterKeyRevocation: a key revoked on one node stops working on the
// other within its revocation poll, well before the 10 s verified-key cache
// would let it lapse, and ends the other node's streams opened with it. It
// logs how long the revocation took to take effect on the second node,
// median of 10:
//
//	go test -race -count=1 -run TestClusterKeyRevocation -v ./internal/server/
func TestClusterKeyRevocation(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 2, "")
	app := nodes[0].NewApp(t, "orders")
	ctx := t.Context()
	topicURL := nodes[1].URL + "/v1/apps/" + app.ID + "/topics/orders"

	var took []time.Duration
	for i := range 10 {
		k, err := nodes[0].Admin.CreateKey(ctx, app.ID, []string{"publish", "subscribe"})
		require.NoError(t, err)
		// Node 1 verifies the key, so it is in its cache, and a stream is
		// open with it there.
		on1 := client.New(nodes[1].URL, k.Key)
		_, err = on1.Publish(ctx, app.ID, "orders", []byte(`{"warm":true}`))
		require.NoError(t, err)
		stream, resp := openStream(t, topicURL+"/events", k.Key, "")
		require.Equal(t, http.StatusOK, resp.StatusCode)

		start := time.Now()
		require.NoError(t, client.New(nodes[0].URL, app.FullKey).RevokeKey(ctx, app.ID, k.ID))
		deadline := start.Add(8 * time.Second) // inside the cache's 10 s
		probe := time.NewTicker(5 * time.Millisecond)
		for {
			r := send(t, http.MethodPost, topicURL+"/messages", k.Key, `{"probe":true}`)
			r.Body.Close()
			if r.StatusCode == http.StatusUnauthorized {
				break
			}
			require.Equal(t, http.StatusAccepted, r.StatusCode)
			require.True(t, time.Now().Before(deadline), "round %d: the key still works on node 1 after %s", i, time.Since(start))
			<-probe.C
		}
		took = append(took, time.Since(start))
		probe.Stop()
		f := nextNamed(t, stream, "key_revoked")
		require.JSONEq(t, `{"key":"`+k.ID+`"}`, f.Data)
	}
	// A browser token minted with a key, used on the other node, stops
	// verifying there too, and its stream there ends.
	k, err := nodes[0].Admin.CreateKey(ctx, app.ID, []string{"subscribe", "manage"})
	require.NoError(t, err)
	tok, err := client.New(nodes[0].URL, k.Key).CreateToken(ctx, app.ID, []string{"orders"}, "1h")
	require.NoError(t, err)
	tokURL := topicURL + "/events?access_token=" + url.QueryEscape(tok.Token)
	r := send(t, http.MethodGet, tokURL, "", "")
	require.Equal(t, http.StatusOK, r.StatusCode)
	tokStream := client.NewFrameReader(r.Body)
	require.NoError(t, client.New(nodes[0].URL, app.FullKey).RevokeKey(ctx, app.ID, k.ID))
	f := nextNamed(t, tokStream, "key_revoked")
	require.JSONEq(t, `{"key":"`+k.ID+`"}`, f.Data)
	requireErrorBody(t, send(t, http.MethodGet, tokURL, "", ""), http.StatusUnauthorized, "token_invalid")

	sorted := slices.Clone(took)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	median := (sorted[4] + sorted[5]) / 2
	t.Logf("revocation took effect on the second node after (median of %d) %s; all: %v", len(took), median, took)
}
