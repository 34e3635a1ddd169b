package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/heraldtest"
)

// get sends a GET with optional headers and returns the response, closed at
// the end of the test.
func get(t *testing.T, c *http.Client, u string, header http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// requireErrorBody reads an error answer and checks its status and code.
func requireErrorBody(t *testing.T, resp *http.Response, status int, code string) string {
	t.Helper()
	require.Equal(t, status, resp.StatusCode)
	var env struct {
		Error struct{ Code, Message string }
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&env))
	require.Equal(t, code, env.Error.Code, env.Error.Message)
	require.NotEmpty(t, env.Error.Message)
	return env.Error.Message
}

func TestBrowserTokenOpensOnlyItsTopics(t *testing.T) {
	t.Parallel()
	srv := heraldtest.StartDefault(t)
	app := srv.NewApp(t, "a", "b", "c")
	other := srv.NewApp(t, "a")

	before := time.Now()
	tok, err := app.Full.CreateToken(t.Context(), app.ID, []string{"b", "a"}, "")
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, tok.Topics)
	require.WithinDuration(t, before.Add(15*time.Minute), tok.ExpiresAt, 2*time.Second, "the default ttl is 15m")

	base := srv.URL + "/v1/apps/" + app.ID
	q := "access_token=" + url.QueryEscape(tok.Token)

	// Both events endpoints take it, and the stream carries the topics.
	multi := get(t, http.DefaultClient, base+"/events?topic=a&topic=b&"+q, nil)
	require.Equal(t, http.StatusOK, multi.StatusCode)
	single := get(t, http.DefaultClient, base+"/topics/b/events?"+q, nil)
	require.Equal(t, http.StatusOK, single.StatusCode)
	header := get(t, http.DefaultClient, base+"/topics/a/events", http.Header{"Authorization": {"Bearer " + tok.Token}})
	require.Equal(t, http.StatusOK, header.StatusCode, "as a bearer header too")
	waitSubscribers(t, app, "b", 2)
	_, err = app.Full.Publish(t.Context(), app.ID, "b", []byte(`{"hello":"b"}`))
	require.NoError(t, err)
	for _, r := range []*http.Response{multi, single} {
		f := nextData(t, client.NewFrameReader(r.Body))
		require.Contains(t, f.Data, `{"hello":"b"}`)
	}

	// Another topic of the app: 403 naming it.
	msg := requireErrorBody(t, get(t, http.DefaultClient, base+"/topics/c/events?"+q, nil), http.StatusForbidden, "topic_not_allowed")
	require.Contains(t, msg, `"c"`)
	require.Contains(t, msg, "a, b", "the message says what the token allows")
	msg = requireErrorBody(t, get(t, http.DefaultClient, base+"/events?topic=a&topic=c&"+q, nil), http.StatusForbidden, "topic_not_allowed")
	require.Contains(t, msg, `"c"`)

	// Another app, even with a topic of the same name: 403.
	msg = requireErrorBody(t, get(t, http.DefaultClient, srv.URL+"/v1/apps/"+other.ID+"/topics/a/events?"+q, nil), http.StatusForbidden, "forbidden")
	require.Contains(t, msg, "another app")

	// Anything but a stream: 403, even with subscribe-like routes.
	msg = requireErrorBody(t, get(t, http.DefaultClient, base+"/topics/a/messages", http.Header{"Authorization": {"Bearer " + tok.Token}}), http.StatusForbidden, "forbidden")
	require.Contains(t, msg, "only opens event streams")
	_, err = client.New(srv.URL, tok.Token).CreateToken(t.Context(), app.ID, []string{"a"}, "")
	requireAPIError(t, err, http.StatusForbidden, "forbidden")

	// A token with a changed payload, or one that is not a JWT at all: 401.
	parts := strings.Split(tok.Token, ".")
	forged := parts[0] + "." + strings.TrimRight(parts[1], "=") + "x." + parts[2]
	msg = requireErrorBody(t, get(t, http.DefaultClient, base+"/topics/a/events?access_token="+forged, nil), http.StatusUnauthorized, "token_invalid")
	require.Contains(t, msg, "not valid")
	msg = requireErrorBody(t, get(t, http.DefaultClient, base+"/topics/a/events?access_token=eyJhbGciOi.x.y", nil), http.StatusUnauthorized, "token_invalid")
	require.Contains(t, msg, "malformed")

	// Only the manage scope (or the admin token) mints.
	_, err = app.SubscribeOnly.CreateToken(t.Context(), app.ID, []string{"a"}, "")
	requireAPIError(t, err, http.StatusForbidden, "forbidden")
	_, err = srv.Admin.CreateToken(t.Context(), app.ID, []string{"a"}, "1h")
	require.NoError(t, err)
	_, err = other.Full.CreateToken(t.Context(), app.ID, []string{"a"}, "1h")
	requireAPIError(t, err, http.StatusForbidden, "forbidden")
}

func TestTokenRequestValidation(t *testing.T) {
	t.Parallel()
	srv := heraldtest.StartDefault(t)
	app := srv.NewApp(t, "a")
	many := make([]string, 65)
	for i := range many {
		many[i] = "a"
	}
	for _, tc := range []struct {
		name   string
		topics []string
		ttl    string
		status int
		code   string
		want   string
	}{
		{"no topics", nil, "", 400, "invalid_request", "at least one topic"},
		{"too many topics", many, "", 400, "invalid_request", "at most 64"},
		{"bad topic name", []string{"a b"}, "", 400, "invalid_request", "topic"},
		{"unknown topic", []string{"a", "ghost"}, "", 404, "topic_not_found", `"ghost"`},
		{"not a duration", []string{"a"}, "soon", 400, "invalid_request", `ttl "soon" is not a duration`},
		{"zero ttl", []string{"a"}, "0s", 400, "invalid_request", "at least 1s"},
		{"negative ttl", []string{"a"}, "-5m", 400, "invalid_request", "at least 1s"},
		{"ttl above the max", []string{"a"}, "25h", 400, "invalid_request", "at most 24h"},
	} {
		_, err := app.Full.CreateToken(t.Context(), app.ID, tc.topics, tc.ttl)
		var he *client.Error
		require.ErrorAs(t, err, &he, tc.name)
		require.Equal(t, tc.status, he.Status, tc.name)
		require.Equal(t, tc.code, he.Code, tc.name)
		require.Contains(t, he.Message, tc.want, tc.name)
	}
	tok, err := app.Full.CreateToken(t.Context(), app.ID, []string{"a"}, "24h")
	require.NoError(t, err, "24h is allowed")
	require.WithinDuration(t, time.Now().Add(24*time.Hour), tok.ExpiresAt, 2*time.Second)

	// Unknown fields are refused, so a typo is not silently ignored.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/v1/apps/"+app.ID+"/tokens",
		strings.NewReader(`{"topics":["a"],"expires":"1h"}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+app.FullKey)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Contains(t, requireErrorBody(t, resp, 400, "invalid_request"), "expires")
}

func TestTokenStreamEndsAtExpiry(t *testing.T) {
	t.Parallel()
	srv := heraldtest.StartDefault(t)
	app := srv.NewApp(t, "a")
	// Expiry has the JWT's one-second precision (it is truncated), so a
	// "1s" token may live for a millisecond. The stream must connect and
	// carry one event before the expiry, which on a busy machine can take
	// a second or more: 5s leaves at least 4s for that.
	tok, err := app.Full.CreateToken(t.Context(), app.ID, []string{"a"}, "5s")
	require.NoError(t, err)

	u := srv.URL + "/v1/apps/" + app.ID + "/topics/a/events?access_token=" + url.QueryEscape(tok.Token)
	resp := get(t, http.DefaultClient, u, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	r := client.NewFrameReader(resp.Body)
	_, err = app.Full.Publish(t.Context(), app.ID, "a", []byte(`1`))
	require.NoError(t, err)
	require.Equal(t, "1", nextData(t, r).ID, "a live stream until then")

	f := nextData(t, r)
	ended := time.Now()
	require.Equal(t, "token_expired", f.Type)
	var d struct {
		ExpiredAt time.Time `json:"expired_at"`
	}
	require.NoError(t, json.Unmarshal([]byte(f.Data), &d))
	require.True(t, d.ExpiredAt.Equal(tok.ExpiresAt), "%v != %v", d.ExpiredAt, tok.ExpiresAt)
	require.False(t, ended.Before(tok.ExpiresAt), "not before the expiry")
	// The server's timer ends the stream at the expiry; when this reader
	// sees it depends on the machine's load, so the bound is generous, but
	// below the 15s heartbeat: it was the expiry timer, not a later check.
	require.WithinDuration(t, tok.ExpiresAt, ended, 10*time.Second, "and at it, not at some later check")
	_, err = r.Next()
	require.ErrorIs(t, err, io.EOF, "the stream ends cleanly")

	// The reconnect EventSource would make is refused, saying why and when.
	msg := requireErrorBody(t, get(t, http.DefaultClient, u, nil), http.StatusUnauthorized, "token_expired")
	require.Contains(t, msg, "expired at "+tok.ExpiresAt.UTC().Format(time.RFC3339))
}

func TestTokenCookie(t *testing.T) {
	t.Parallel()
	srv := heraldtest.StartDefault(t)
	app := srv.NewApp(t, "a", "b")
	tok, err := app.Full.CreateToken(t.Context(), app.ID, []string{"a"}, "10m")
	require.NoError(t, err)
	base := srv.URL + "/v1/apps/" + app.ID
	cookie := func(v string) http.Header { return http.Header{"Cookie": {"herald_token=" + v}} }

	resp := get(t, http.DefaultClient, base+"/events?topic=a", cookie(tok.Token))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	waitSubscribers(t, app, "a", 1)
	_, err = app.Full.Publish(t.Context(), app.ID, "a", []byte(`"via cookie"`))
	require.NoError(t, err)
	require.Contains(t, nextData(t, client.NewFrameReader(resp.Body)).Data, `"via cookie"`)

	requireErrorBody(t, get(t, http.DefaultClient, base+"/topics/b/events", cookie(tok.Token)), http.StatusForbidden, "topic_not_allowed")
	// The cookie carries browser tokens only: never a key, never the admin token.
	requireErrorBody(t, get(t, http.DefaultClient, base+"/topics/a/events", cookie(app.SubscribeKey)), http.StatusUnauthorized, "token_invalid")
	requireErrorBody(t, get(t, http.DefaultClient, base+"/topics/a/events", cookie(heraldtest.AdminToken)), http.StatusUnauthorized, "token_invalid")
	// And only on the events endpoints.
	requireErrorBody(t, get(t, http.DefaultClient, base+"/topics/a/messages", cookie(tok.Token)), http.StatusUnauthorized, "unauthenticated")
}

func TestTokenKeyFollowsSecretOrAdminToken(t *testing.T) {
	t.Parallel()
	const secret = "0123456789abcdef0123456789abcdef"
	cfg := heraldtest.Config(t)
	srv := heraldtest.Start(t, cfg)
	app := srv.NewApp(t, "a")
	derived, err := app.Full.CreateToken(t.Context(), app.ID, []string{"a"}, "1h")
	require.NoError(t, err)
	require.NoError(t, srv.Stop())

	// With --token-secret, tokens are signed with it, and the admin token
	// no longer matters.
	cfg.TokenSecret = secret
	srv = heraldtest.Start(t, cfg)
	events := "/v1/apps/" + app.ID + "/topics/a/events?access_token="
	requireErrorBody(t, get(t, http.DefaultClient, srv.URL+events+derived.Token, nil), http.StatusUnauthorized, "token_invalid")
	withSecret, err := client.New(srv.URL, app.FullKey).CreateToken(t.Context(), app.ID, []string{"a"}, "1h")
	require.NoError(t, err)
	signer, err := auth.NewTokenSigner([]byte(secret))
	require.NoError(t, err)
	_, err = signer.Verify(withSecret.Token, time.Now())
	require.NoError(t, err, "signed with the configured secret")
	require.NoError(t, srv.Stop())

	cfg.AdminToken = "a-rotated-admin-token"
	srv = heraldtest.Start(t, cfg)
	require.Equal(t, http.StatusOK, get(t, http.DefaultClient, srv.URL+events+withSecret.Token, nil).StatusCode,
		"a token secret survives an admin token rotation")
	require.NoError(t, srv.Stop())

	// Without a secret, rotating the admin token invalidates outstanding
	// tokens, as the README says.
	cfg.TokenSecret = ""
	srv = heraldtest.Start(t, cfg)
	requireErrorBody(t, get(t, http.DefaultClient, srv.URL+events+derived.Token, nil), http.StatusUnauthorized, "token_invalid")
}
