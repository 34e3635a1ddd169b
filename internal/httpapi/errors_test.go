package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/httpapi"
	"github.com/heraldhq/herald/internal/limit"
	"github.com/heraldhq/herald/internal/store"
)

// faultyStore is the real store but for publishing, which fails with err:
// a store that is down, full, or lost its connection during COMMIT, which
// a real store cannot be made to do on demand.
type faultyStore struct {
	store.Store
	err error
}

func (s faultyStore) Publish(context.Context, store.PublishRequest) (store.Message, error) {
	return store.Message{}, s.err
}

func (s faultyStore) PublishBatch(context.Context, []store.PublishRequest) ([]store.Message, error) {
	return nil, s.err
}

// TestStoreFailuresAnswerWhatAClientCanActOn publishes, alone and in a
// batch, through a store that fails, and checks the status, code and
// Retry-After each failure gets, and that driver details stay out of the
// answer.
func TestStoreFailuresAnswerWhatAClientCanActOn(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		err        error
		status     int
		code       string
		retryAfter string
		says       string
	}{
		{
			name: "unavailable", err: fmt.Errorf("%w: dial tcp 10.1.2.3:5432: connection refused", store.ErrUnavailable),
			status: http.StatusServiceUnavailable, code: "unavailable", retryAfter: "1", says: "retry",
		},
		{
			// Freeing space takes an operator: a longer wait.
			name: "disk full", err: fmt.Errorf("write: %w: database or disk is full", store.ErrFull),
			status: http.StatusServiceUnavailable, code: "unavailable", retryAfter: "30", says: "full",
		},
		{
			name: "commit unknown", err: fmt.Errorf("%w: %w", store.ErrCommitUnknown, io.ErrUnexpectedEOF),
			status: http.StatusServiceUnavailable, code: "commit_unknown", retryAfter: "1", says: "Idempotency-Key is safe",
		},
		{
			name: "anything else", err: errors.New("dial tcp: the driver exploded"),
			status: http.StatusInternalServerError, code: "internal", says: "internal error",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, apiOptions{wrapStore: func(st store.Store) store.Store { return faultyStore{st, tc.err} }})
			for _, req := range []struct{ path, body string }{
				{"/v1/apps/" + b.app + "/topics/" + testTopic + "/messages", `{"n":1}`},
				{"/v1/apps/" + b.app + "/messages", `{"messages":[{"topic":"t","message":1},{"topic":"t","message":2}]}`},
			} {
				got := b.do(t, http.MethodPost, req.path, strings.NewReader(req.body), bearer(b.full))
				require.Equal(t, tc.status, got.status, "%s: %s", req.path, got.message)
				require.Equal(t, tc.code, got.code, req.path)
				require.Equal(t, tc.retryAfter, got.header.Get("Retry-After"), req.path)
				require.Contains(t, got.message, tc.says, req.path)
				require.NotContains(t, got.message, "dial tcp", "driver details stay in the log")
				require.Nil(t, got.index, "a failure of the whole batch names no message")
			}
		})
	}
}

// TestRequestErrorsMapToStatuses sends requests that real parts refuse
// and checks the status and code of each: the mapping of the domain's
// sentinels (not found, invalid, too large, too deep, bad Last-Event-ID,
// reused idempotency key) to what a client sees.
func TestRequestErrorsMapToStatuses(t *testing.T) {
	t.Parallel()
	b := setup(t, apiOptions{})
	app := "/v1/apps/" + b.app
	publish := app + "/topics/" + testTopic + "/messages"
	// The first publish with this key is to testTopic; the case below
	// reuses it on another topic.
	require.Equal(t, http.StatusAccepted, b.do(t, http.MethodPost, publish, strings.NewReader("1"),
		withKey(bearer(b.full), "idem-1")).status)
	_, _, err := b.svc.CreateTopic(t.Context(), b.app, "u")
	require.NoError(t, err)

	for _, tc := range []struct {
		name, method, path, body string
		edit                     func(*http.Request)
		status                   int
		code                     string
		says                     string
	}{
		{"unknown topic", "POST", app + "/topics/nope/messages", "1", nil, 404, "topic_not_found", `no topic "nope" in this app`},
		{"body not JSON", "POST", publish, "{", nil, 400, "invalid_request", ""},
		{"message too large", "POST", publish, `"` + strings.Repeat("x", 70_000) + `"`, nil, 413, "message_too_large", "65536 bytes"},
		{"message too deep", "POST", publish, strings.Repeat("[", 65) + strings.Repeat("]", 65), nil, 400, "message_too_deep", "64 levels"},
		{"topic of dots", "PUT", app + "/topics/...", "", nil, 400, "invalid_request", "besides dots"},
		{"topic too long", "PUT", app + "/topics/" + strings.Repeat("a", 129), "", nil, 400, "invalid_request", "1 to 128"},
		{"history limit", "GET", publish + "?limit=0", "", nil, 400, "invalid_request", "limit must be 1 to 1000"},
		{"history cursor", "GET", publish + "?after=x", "", nil, 400, "invalid_request", "after must be a message id"},
		{
			"idempotency key reused on another topic", "POST", app + "/topics/u/messages", "1",
			func(r *http.Request) { r.Header.Set("Idempotency-Key", "idem-1") }, 409, "idempotency_key_reused", "another topic",
		},
		{
			"bad Last-Event-ID", "GET", app + "/topics/" + testTopic + "/events", "",
			func(r *http.Request) { r.Header.Set("Last-Event-ID", "not-an-id") }, 400, "invalid_last_event_id", "",
		},
		{"stream of an unknown topic", "GET", app + "/topics/nope/events", "", nil, 404, "topic_not_found", ""},
		{"stream of no topic", "GET", app + "/events", "", nil, 400, "invalid_request", "name at least one topic"},
		{"unknown key", "DELETE", app + "/keys/nope", "", nil, 404, "key_not_found", ""},
		{"unknown field", "POST", app + "/keys", `{"scopes":["publish"],"admin":true}`, nil, 400, "invalid_request", "unknown field"},
		{"unknown scope", "POST", app + "/keys", `{"scopes":["root"]}`, nil, 400, "invalid_request", `unknown scope "root"`},
		{"triggers not served", "GET", app + "/topics/" + testTopic + "/triggers", "", nil, 404, "route_not_found", "triggers"},
		{"stats not served", "GET", app + "/stats", "", nil, 404, "route_not_found", ""},
		{"unknown app, admin route", "DELETE", "/v1/apps/nope", "", bearer(b.admin), 404, "app_not_found", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			// The full key, unless the case brings its own credential.
			got := b.do(t, tc.method, tc.path, body, chain(bearer(b.full), tc.edit))
			require.Equal(t, tc.status, got.status, got.message)
			require.Equal(t, tc.code, got.code, got.message)
			require.Contains(t, got.message, tc.says)
			require.Empty(t, got.header.Get("Retry-After"), "nothing here passes with time")
			require.Empty(t, got.header.Get("WWW-Authenticate"))
		})
	}
}

// TestBatchErrorsNameTheMessage checks that an error caused by one message
// of a batch carries its index, and that nothing of the batch is stored.
func TestBatchErrorsNameTheMessage(t *testing.T) {
	t.Parallel()
	b := setup(t, apiOptions{})
	batch := "/v1/apps/" + b.app + "/messages"
	deep := strings.Repeat("[", 65) + strings.Repeat("]", 65)
	for _, tc := range []struct {
		name, body string
		index      int
		status     int
		code       string
	}{
		{"unknown topic", `{"messages":[{"topic":"t","message":1},{"topic":"nope","message":2}]}`, 1, 404, "topic_not_found"},
		{"no message", `{"messages":[{"topic":"t","message":1},{"topic":"t","message":2},{"topic":"t"}]}`, 2, 400, "invalid_request"},
		{"too deep", `{"messages":[{"topic":"t","message":` + deep + `}]}`, 0, 400, "message_too_deep"},
		{"bad topic name", `{"messages":[{"topic":"t","message":1},{"topic":"a b","message":2}]}`, 1, 400, "invalid_request"},
		{
			"idempotency key twice", `{"messages":[{"topic":"t","message":1,"idempotency_key":"k"},{"topic":"t","message":2,"idempotency_key":"k"}]}`,
			1, 400, "invalid_request",
		},
	} {
		got := b.do(t, http.MethodPost, batch, strings.NewReader(tc.body), bearer(b.full))
		require.Equal(t, tc.status, got.status, "%s: %s", tc.name, got.message)
		require.Equal(t, tc.code, got.code, tc.name)
		require.NotNil(t, got.index, tc.name)
		require.Equal(t, tc.index, *got.index, tc.name)
	}
	msgs, err := b.svc.History(t.Context(), b.app, testTopic, 0, 10)
	require.NoError(t, err)
	require.Empty(t, msgs, "a refused batch stores nothing")
}

// TestLimitsAnswerWithRetryAfter reaches an app's publish rate and stream
// limits, and the node's stream cap, and checks each refusal says which
// and when to retry.
func TestLimitsAnswerWithRetryAfter(t *testing.T) {
	t.Parallel()
	b := setup(t, apiOptions{config: func(c *httpapi.Config) {
		// One publish, refilled after about 17 minutes: the second
		// publish is refused however slow the machine is.
		c.Limits = limit.NewApps(limit.AppsOptions{Defaults: store.AppLimits{PublishRate: 0.001, PublishBurst: 1, Streams: 1}})
		c.MaxStreams = 2
	}})
	publish := "/v1/apps/" + b.app + "/topics/" + testTopic + "/messages"
	require.Equal(t, http.StatusAccepted, b.do(t, http.MethodPost, publish, strings.NewReader("1"), bearer(b.full)).status)
	got := b.do(t, http.MethodPost, publish, strings.NewReader("2"), bearer(b.full))
	require.Equal(t, http.StatusTooManyRequests, got.status)
	require.Equal(t, "rate_limited", got.code)
	secs, err := strconv.Atoi(got.header.Get("Retry-After"))
	require.NoError(t, err)
	require.Greater(t, secs, 60, "the bucket refills in about 1,000 s")

	// The app's one stream is held; its second is refused by the app's
	// limit, and another app's second stream by the node's cap of two.
	events := func(app string) string { return "/v1/apps/" + app + "/topics/" + testTopic + "/events" }
	b.hold(t, events(b.app), b.full)
	got = b.do(t, http.MethodGet, events(b.app), nil, bearer(b.full))
	require.Equal(t, http.StatusTooManyRequests, got.status, got.message)
	require.Equal(t, "limit_reached", got.code)
	require.Contains(t, got.message, "streams")
	require.NotEmpty(t, got.header.Get("Retry-After"))

	b.hold(t, events(b.other), b.otherKey)
	got = b.do(t, http.MethodGet, events(b.other), nil, bearer(b.otherKey))
	require.Equal(t, http.StatusServiceUnavailable, got.status, got.message)
	require.Equal(t, "too_many_streams", got.code)
	require.Equal(t, "5", got.header.Get("Retry-After"))
}

// TestStreamsRefusedWhileShuttingDown closes the stream handler, as the
// server does on shutdown: a new stream gets 503 and Retry-After, for the
// client to go to another node or come back.
func TestStreamsRefusedWhileShuttingDown(t *testing.T) {
	t.Parallel()
	b := setup(t, apiOptions{})
	require.NoError(t, b.streams.Close(t.Context()))
	got := b.do(t, http.MethodGet, "/v1/apps/"+b.app+"/topics/"+testTopic+"/events", nil, bearer(b.full))
	require.Equal(t, http.StatusServiceUnavailable, got.status)
	require.Equal(t, "unavailable", got.code)
	require.Equal(t, "1", got.header.Get("Retry-After"))
}

// panickyTopics is the real topic service but for History, which panics:
// a bug in a dependency.
type panickyTopics struct{ httpapi.TopicService }

func (panickyTopics) History(context.Context, string, string, uint64, int) ([]store.Message, error) {
	panic("history: index out of range")
}

// TestHandlerPanicAnswers500AndTheServerGoesOn checks that a panic in a
// handler answers 500 internal without its text, and that the server (and
// the client's connection) keeps serving.
func TestHandlerPanicAnswers500AndTheServerGoesOn(t *testing.T) {
	t.Parallel()
	b := setup(t, apiOptions{config: func(c *httpapi.Config) { c.Topics = panickyTopics{c.Topics} }})
	history := "/v1/apps/" + b.app + "/topics/" + testTopic + "/messages"
	for range 3 {
		got := b.do(t, http.MethodGet, history, nil, bearer(b.full))
		require.Equal(t, http.StatusInternalServerError, got.status)
		require.Equal(t, "internal", got.code)
		require.Equal(t, "internal error", got.message)
	}
	require.Equal(t, http.StatusOK, b.do(t, http.MethodGet, "/healthz", nil, nil).status)
	got := b.do(t, http.MethodGet, "/v1/apps/"+b.app+"/topics", nil, bearer(b.full))
	require.Equal(t, http.StatusOK, got.status)
	require.Contains(t, string(got.body), `"name":"t"`)
}

// TestUnknownRouteEchoesItsInputCut answers 404 route_not_found naming the
// method and path, cut so a huge path is not sent back whole.
func TestUnknownRouteEchoesItsInputCut(t *testing.T) {
	t.Parallel()
	b := setup(t, apiOptions{})
	got := b.do(t, http.MethodGet, "/v1/nothing", nil, nil)
	require.Equal(t, http.StatusNotFound, got.status)
	require.Equal(t, "route_not_found", got.code)
	require.Equal(t, "no such route: GET /v1/nothing", got.message)

	long := "/v1/nothing/" + strings.Repeat("a", 10_000)
	got = b.do(t, http.MethodGet, long, nil, nil)
	require.Equal(t, http.StatusNotFound, got.status)
	require.Equal(t, "route_not_found", got.code)
	require.Equal(t, "no such route: GET "+long[:limit.MaxEcho]+"…", got.message)
}

// TestReadyzAnswers503WithTheReason reports the ReadyFunc's error.
func TestReadyzAnswers503WithTheReason(t *testing.T) {
	t.Parallel()
	b := setup(t, apiOptions{config: func(c *httpapi.Config) {
		c.ReadyFunc = func() error { return errors.New("store: disk full") }
	}})
	got := b.do(t, http.MethodGet, "/readyz", nil, nil)
	require.Equal(t, http.StatusServiceUnavailable, got.status)
	require.Contains(t, string(got.body), "disk full")
}

// withKey adds an Idempotency-Key to edit.
func withKey(edit func(*http.Request), key string) func(*http.Request) {
	return chain(edit, func(r *http.Request) { r.Header.Set("Idempotency-Key", key) })
}

// chain applies each non-nil edit in turn.
func chain(edits ...func(*http.Request)) func(*http.Request) {
	return func(r *http.Request) {
		for _, e := range edits {
			if e != nil {
				e(r)
			}
		}
	}
}

// TestPublishBodyDeclaredOrChunked publishes a body of declared length and
// a chunked one (no Content-Length), within the limit and over it: both
// ways of sending answer alike.
func TestPublishBodyDeclaredOrChunked(t *testing.T) {
	t.Parallel()
	b := setup(t, apiOptions{})
	publish := "/v1/apps/" + b.app + "/topics/" + testTopic + "/messages"
	chunked := func(r *http.Request) { r.ContentLength = -1 }
	for _, tc := range []struct {
		name, body string
		edit       func(*http.Request)
		status     int
		code       string
	}{
		{"declared", `{"a": 1}`, nil, 202, ""},
		{"chunked", `{"a": 1}`, chunked, 202, ""},
		{"declared, over the read limit", strings.Repeat(" ", 300_000) + "1", nil, 413, "message_too_large"},
		{"chunked, over the read limit", strings.Repeat(" ", 300_000) + "1", chunked, 413, "message_too_large"},
		{"declared, not JSON", `{"a":`, nil, 400, "invalid_request"},
		{"chunked, not JSON", `{"a":`, chunked, 400, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := b.do(t, http.MethodPost, publish, strings.NewReader(tc.body), chain(bearer(b.full), tc.edit))
			require.Equal(t, tc.status, got.status, "%s", got.body)
			require.Equal(t, tc.code, got.code)
			if got.status != http.StatusAccepted {
				return
			}
			var m struct{ ID string }
			require.NoError(t, json.Unmarshal(got.body, &m))
			id, err := strconv.ParseUint(m.ID, 10, 64)
			require.NoError(t, err)
			msgs, err := b.svc.History(t.Context(), b.app, testTopic, id-1, 1)
			require.NoError(t, err)
			require.Len(t, msgs, 1)
			require.Equal(t, `{"a":1}`, string(msgs[0].Body), "stored compacted")
		})
	}
}
