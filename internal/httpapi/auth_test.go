package httpapi_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/httpapi"
)

// The WWW-Authenticate challenges of a 401: a plain one when no usable
// credential came, and one naming invalid_token when a browser token did
// but is bad or expired.
const (
	challenge        = `Bearer realm="herald"`
	invalidTokenChal = `Bearer realm="herald", error="invalid_token"`
)

// want is the expected answer to one credential on one kind of route.
type want struct {
	status int
	code   string
	// challenge is the WWW-Authenticate header, empty for none.
	challenge string
}

var (
	ok              = want{status: http.StatusOK}
	unauthenticated = want{http.StatusUnauthorized, "unauthenticated", challenge}
	forbidden       = want{status: http.StatusForbidden, code: "forbidden"}
)

// TestCredentialsOnEachKindOfRoute sends every kind of credential, from
// every place a client may put one, to an admin route (GET /v1/apps), a
// scoped one (GET …/topics, which needs the manage scope) and a stream
// (GET …/events), and checks the status, the error code and the
// WWW-Authenticate challenge of each answer.
func TestCredentialsOnEachKindOfRoute(t *testing.T) {
	t.Parallel()
	b := setup(t, apiOptions{})
	// tampered is the browser token with its signature changed.
	tampered := b.token[:len(b.token)-2] + "AA"
	if tampered == b.token {
		tampered = b.token[:len(b.token)-2] + "BB"
	}
	for _, tc := range []struct {
		name                  string
		edit                  func(*http.Request)
		admin, scoped, stream want
	}{
		{name: "none", admin: unauthenticated, scoped: unauthenticated, stream: unauthenticated},
		{
			name: "malformed Authorization header",
			edit: func(r *http.Request) { r.Header.Set("Authorization", "Basic YWRtaW46YWRtaW4=") },
			// A scheme other than Bearer is no credential at all.
			admin: unauthenticated, scoped: unauthenticated, stream: unauthenticated,
		},
		{
			name:  "unknown app key",
			edit:  bearer("hk_0000000000000000_nope"),
			admin: unauthenticated, scoped: unauthenticated, stream: unauthenticated,
		},
		{name: "admin token", edit: bearer(b.admin), admin: ok, scoped: ok, stream: ok},
		{name: "app key with every scope", edit: bearer(b.full), admin: forbidden, scoped: ok, stream: ok},
		{name: "app key without the route's scope", edit: bearer(b.sub), admin: forbidden, scoped: forbidden, stream: ok},
		{name: "another app's key", edit: bearer(b.otherKey), admin: forbidden, scoped: forbidden, stream: forbidden},
		{name: "app key in ?access_token=", edit: query(b.full), admin: unauthenticated, scoped: unauthenticated, stream: ok},
		{
			name: "app key in the cookie",
			edit: cookie(b.full),
			// The cookie carries browser tokens only.
			admin: unauthenticated, scoped: unauthenticated,
			stream: want{http.StatusUnauthorized, "token_invalid", invalidTokenChal},
		},
		{
			name: "browser token in the header",
			edit: bearer(b.token),
			// A browser token only opens streams.
			admin: forbidden, scoped: forbidden, stream: ok,
		},
		{
			name: "browser token in ?access_token=",
			edit: query(b.token),
			// Only streams read ?access_token= and the cookie.
			admin: unauthenticated, scoped: unauthenticated, stream: ok,
		},
		{name: "browser token in the cookie", edit: cookie(b.token), admin: unauthenticated, scoped: unauthenticated, stream: ok},
		{name: "another app's browser token", edit: query(b.otherToken), admin: unauthenticated, scoped: unauthenticated, stream: forbidden},
		{
			name:   "tampered browser token",
			edit:   bearer(tampered),
			admin:  unauthenticated,
			scoped: want{http.StatusUnauthorized, "token_invalid", invalidTokenChal},
			stream: want{http.StatusUnauthorized, "token_invalid", invalidTokenChal},
		},
		{
			name:   "admin token in ?access_token=",
			edit:   query(b.admin),
			admin:  unauthenticated,
			scoped: unauthenticated,
			// The one credential that manages every app never goes in
			// URLs, which end up in logs.
			stream: want{http.StatusUnauthorized, "admin_token_in_url", challenge},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, rt := range []struct {
				kind, path string
				want       want
			}{
				{"admin", "/v1/apps", tc.admin},
				{"scoped", "/v1/apps/" + b.app + "/topics", tc.scoped},
				{"stream", "/v1/apps/" + b.app + "/topics/" + testTopic + "/events", tc.stream},
			} {
				got := b.do(t, http.MethodGet, rt.path, nil, tc.edit)
				require.Equal(t, rt.want.status, got.status, "%s route: %s", rt.kind, got.message)
				require.Equal(t, rt.want.code, got.code, "%s route: %s", rt.kind, got.message)
				require.Equal(t, rt.want.challenge, got.header.Get("WWW-Authenticate"), "%s route", rt.kind)
				if rt.kind == "stream" && got.status == http.StatusOK {
					require.Equal(t, "text/event-stream; charset=utf-8", got.header.Get("Content-Type"))
				}
			}
		})
	}
}

// TestExpiredBrowserTokenSaysHowToGoOn checks that a stream opened with an
// expired token is told so, with when and what to do, not just refused.
func TestExpiredBrowserTokenSaysHowToGoOn(t *testing.T) {
	t.Parallel()
	b := setup(t, apiOptions{})
	minted := time.Now().Add(-time.Hour)
	tok, _, err := b.tokens.MintForKey("", b.app, []string{testTopic}, time.Minute, minted)
	require.NoError(t, err)
	got := b.do(t, http.MethodGet, "/v1/apps/"+b.app+"/topics/"+testTopic+"/events", nil, query(tok))
	require.Equal(t, http.StatusUnauthorized, got.status)
	require.Equal(t, "token_expired", got.code)
	require.Equal(t, invalidTokenChal, got.header.Get("WWW-Authenticate"))
	require.Contains(t, got.message, minted.Add(time.Minute).UTC().Format(time.RFC3339))
	require.Contains(t, got.message, "last_event_id")
}

// TestBrowserTokenOfARevokedKeyIsRefused revokes the key that minted a
// token through the API: the token no longer opens a stream.
func TestBrowserTokenOfARevokedKeyIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, apiOptions{})
	keys := "/v1/apps/" + b.app + "/keys"
	got := b.do(t, http.MethodPost, keys, strings.NewReader(`{"scopes":["subscribe"]}`), bearer(b.full))
	require.Equal(t, http.StatusCreated, got.status, got.message)
	var created struct{ ID string }
	require.NoError(t, json.Unmarshal(got.body, &created))
	require.NotEmpty(t, created.ID)

	// The new key mints a token; the token opens a stream until the key
	// is revoked.
	tok, _, err := b.tokens.MintForKey(created.ID, b.app, []string{testTopic}, time.Minute, time.Now())
	require.NoError(t, err)
	events := "/v1/apps/" + b.app + "/topics/" + testTopic + "/events"
	require.Equal(t, http.StatusOK, b.do(t, http.MethodGet, events, nil, query(tok)).status)
	require.Equal(t, http.StatusNoContent, b.do(t, http.MethodDelete, keys+"/"+created.ID, nil, bearer(b.full)).status)

	got = b.do(t, http.MethodGet, events, nil, query(tok))
	require.Equal(t, http.StatusUnauthorized, got.status)
	require.Equal(t, "token_invalid", got.code)
	require.Contains(t, got.message, "revoked")
}

// TestAdminTokenOnAMissingApp answers 404 app_not_found on scoped routes:
// the admin token may act on any app, but only one that exists.
func TestAdminTokenOnAMissingApp(t *testing.T) {
	t.Parallel()
	b := setup(t, apiOptions{})
	for _, path := range []string{"/v1/apps/nope/topics", "/v1/apps/nope/topics/" + testTopic + "/events"} {
		got := b.do(t, http.MethodGet, path, nil, bearer(b.admin))
		require.Equal(t, http.StatusNotFound, got.status, path)
		require.Equal(t, "app_not_found", got.code, path)
	}
}

// TestBrowserTokenOnlyOpensItsTopics refuses a multi-topic stream naming a
// topic the token does not allow, and names the ones it does.
func TestBrowserTokenOnlyOpensItsTopics(t *testing.T) {
	t.Parallel()
	b := setup(t, apiOptions{})
	_, _, err := b.svc.CreateTopic(t.Context(), b.app, "u")
	require.NoError(t, err)
	got := b.do(t, http.MethodGet, "/v1/apps/"+b.app+"/events?topic="+testTopic+"&topic=u", nil, bearer(b.token))
	require.Equal(t, http.StatusForbidden, got.status)
	require.Equal(t, "topic_not_allowed", got.code)
	require.Equal(t, `this token does not allow topic "u"; it allows: `+testTopic, got.message)
}

// query puts cred in ?access_token=.
func query(cred string) func(*http.Request) {
	return func(r *http.Request) { r.URL.RawQuery = "access_token=" + url.QueryEscape(cred) }
}

// cookie puts cred in the browser token cookie.
func cookie(cred string) func(*http.Request) {
	return func(r *http.Request) { r.AddCookie(&http.Cookie{Name: httpapi.TokenCookie, Value: cred}) }
}
