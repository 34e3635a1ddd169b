package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/broadcast"
	"github.com/heraldhq/herald/internal/dashboard"
	"github.com/heraldhq/herald/internal/event"
	"github.com/heraldhq/herald/internal/limit"
	"github.com/heraldhq/herald/internal/pubsub"
	"github.com/heraldhq/herald/internal/sse"
	"github.com/heraldhq/herald/internal/stats"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/webhook"
)

// DefaultMaxBatchBytes is the largest batch publish body when
// Config.MaxBatchBytes is 0.
const DefaultMaxBatchBytes = 4 << 20

// MaxTopicsPerStream bounds the topics of one multi-topic stream.
const MaxTopicsPerStream = 64

// Config is what the API needs from its composition root. Each
// dependency is a small interface declared below, holding only the methods
// the API calls, so the API can be tested on its own with real parts where
// they are cheap and a fake where a fault must be injected. A dependency
// documented as optional must be a nil interface to be absent, not a nil
// pointer inside one.
type Config struct {
	// Publisher stores and broadcasts messages (pubsub.Service).
	Publisher Publisher
	// Topics creates, lists and deletes topics and reads their history
	// (pubsub.Service).
	Topics TopicService
	// Apps creates, lists and deletes apps for the admin routes
	// (pubsub.Service).
	Apps AppService
	// AppGetter looks up the path's app for requests made with the admin
	// token; the store satisfies it.
	AppGetter AppGetter
	// Streams serves the event streams (sse.Handler).
	Streams StreamServer
	// Keys verifies app keys (auth.Verifier).
	Keys KeyVerifier
	// Admin is the install-wide token that manages every app.
	Admin auth.AdminToken
	// ReadyFunc reports whether the server takes traffic (for /readyz).
	ReadyFunc func() error
	// Metrics serves /metrics.
	Metrics http.Handler
	// Triggers manages webhook triggers and dead letters
	// (webhook.Triggers). Nil answers their routes with 404.
	Triggers TriggerManager
	// KeyStore issues, lists and revokes app keys. Nil answers the key
	// routes with 404.
	KeyStore KeyStore
	// Stats keeps each app's recent figures for GET …/stats and counts its
	// publishes (stats.Recorder). Nil answers that route with 404.
	Stats StatsRecorder
	// Nodes, in cluster mode, reads every node's report for GET …/stats;
	// NodeID is this node's id in them. Nil leaves the nodes out.
	Nodes  NodeReports
	NodeID string
	// Tokens mints and verifies browser tokens (auth.TokenSigner). Nil
	// refuses them.
	Tokens TokenSigner
	// CORS lists the origins browsers may call from: exact origins get
	// credentialed CORS, "*" any origin without credentials. Empty sends no
	// CORS headers.
	CORS []string
	// MaxBatchBytes bounds the body of a batch publish
	// (POST /v1/apps/{app}/messages). 0 (or less) means
	// DefaultMaxBatchBytes.
	MaxBatchBytes int
	// Logger logs failures, refused CORS origins, and at debug level one
	// line per request (with any access_token redacted). Nil discards.
	Logger *slog.Logger
	// ReadTimeout bounds reading a request body, on every route but the
	// event streams. 0 means DefaultReadTimeout.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing an answer, from its start, on every
	// route but the event streams (which bound each write themselves). 0
	// means DefaultWriteTimeout.
	WriteTimeout time.Duration
	// MaxStreams caps the event streams open on this node; past it a
	// stream is refused with 503 and Retry-After. 0 or less is unlimited.
	MaxStreams int
	// Limits enforces per-app limits (limit.Apps); nil enforces none.
	Limits AppLimiter
	// AppLimits keeps apps' own limits (PATCH /v1/apps/{app}); nil answers
	// that route with 404.
	AppLimits store.LimitStore
}

// The interfaces below are the API's view of its dependencies. The API
// calls them from every request's goroutine, so each implementation must
// be safe for concurrent use. Errors come back as the sentinels of the
// store, pubsub, auth, sse and webhook packages (or wrap them), which
// writeError maps to statuses; anything else answers 500.

// Publisher stores and broadcasts messages. Its limits are read for the
// text of the errors that name them.
type Publisher interface {
	// PublishRequest publishes one message, or replays the one stored
	// under the publication's idempotency key.
	PublishRequest(ctx context.Context, p pubsub.Publication) (pubsub.Published, error)
	// PublishBatch publishes every message or none; an error caused by one
	// of them is a *store.ItemError naming it.
	PublishBatch(ctx context.Context, ps []pubsub.Publication) ([]pubsub.Published, error)
	// MaxMessageBytes is the largest message accepted, compacted.
	MaxMessageBytes() int
	// MaxDepth is the deepest nesting of arrays and objects accepted.
	MaxDepth() int
}

// TopicService creates, lists and deletes an app's topics and reads their
// history. A missing app or topic is store.ErrNotFound.
type TopicService interface {
	// CreateTopic creates the topic, or returns the existing one with
	// created false.
	CreateTopic(ctx context.Context, appID, name string) (t store.Topic, created bool, err error)
	ListTopics(ctx context.Context, appID string) ([]store.Topic, error)
	DeleteTopic(ctx context.Context, appID, name string) error
	History(ctx context.Context, appID, topic string, after uint64, limit int) ([]store.Message, error)
}

// AppService creates, lists and deletes apps. A missing app is
// store.ErrNotFound.
type AppService interface {
	// CreateApp creates an app with its first keys.
	CreateApp(ctx context.Context, name string) (pubsub.AppWithKeys, error)
	ListApps(ctx context.Context) ([]store.App, error)
	DeleteApp(ctx context.Context, appID string) error
}

// AppGetter looks up one app; a missing one is store.ErrNotFound.
type AppGetter interface {
	GetApp(ctx context.Context, appID string) (store.App, error)
}

// StreamServer serves event streams and ends them.
type StreamServer interface {
	// Serve streams the events of req's topics to w. An error means
	// nothing was written and the API answers with it: a wrapped
	// store.ErrNotFound, sse.ErrBadLastEventID or sse.ErrShuttingDown.
	Serve(w http.ResponseWriter, r *http.Request, req sse.Request) error
	// Subscribers counts the streams open on this node for a topic.
	Subscribers(app, topic string) int
	// EndKey ends the streams opened with a key (or a token it minted) and
	// returns how many.
	EndKey(keyID string) int
}

// KeyVerifier verifies app keys. Verify returns auth.ErrUnauthenticated
// for a key that is unknown, malformed or revoked; KeyValid returns
// auth.ErrKeyRevoked for a revoked one.
type KeyVerifier interface {
	Verify(ctx context.Context, presented string) (store.Key, error)
	KeyValid(ctx context.Context, keyID string) error
	// ForgetKey and Forget drop what is remembered of a revoked key or a
	// deleted app's keys.
	ForgetKey(keyID string)
	Forget(appID string)
}

// TokenSigner mints and verifies browser tokens. Verify returns
// auth.ErrTokenInvalid (wrapped) or a *auth.TokenExpiredError.
type TokenSigner interface {
	MintForKey(keyID, app string, topics []string, ttl time.Duration, now time.Time) (string, auth.BrowserToken, error)
	Verify(token string, now time.Time) (auth.BrowserToken, error)
}

// StatsRecorder counts an app's publishes and reports its recent figures.
type StatsRecorder interface {
	Published(app string, n int)
	Snapshot(app string) stats.Snapshot
}

// AppLimiter enforces the per-app limits. A refusal is a *limit.Refused.
type AppLimiter interface {
	// Limits returns the limits in force for the app.
	Limits(ctx context.Context, appID string) (store.AppLimits, error)
	// Forget drops what is remembered of the app's limits, after they
	// change or the app is deleted.
	Forget(appID string)
	// AcquireStream takes one of the app's stream slots; the stream calls
	// release when it ends.
	AcquireStream(ctx context.Context, appID string) (release func(), err error)
	// AllowPublish spends n of the app's publish rate.
	AllowPublish(ctx context.Context, appID string, n int) error
	CheckTopics(ctx context.Context, appID string, have int) error
	CheckTriggers(ctx context.Context, appID string, have int) error
}

// API is the HTTP handler of the whole server.
type API struct {
	cfg         Config
	mux         *http.ServeMux
	log         *slog.Logger
	cors        *cors
	dash        http.Handler
	readTimeout time.Duration
	// writeTimeout is Config.WriteTimeout, defaulted.
	writeTimeout time.Duration
	// streams counts the open event streams, under the key "".
	streams limit.Counter
}

// New returns the API's handler.
func New(cfg Config) *API {
	if cfg.MaxBatchBytes <= 0 {
		cfg.MaxBatchBytes = DefaultMaxBatchBytes
	}
	a := &API{cfg: cfg, mux: http.NewServeMux(), log: cfg.Logger, readTimeout: cfg.ReadTimeout}
	if a.readTimeout <= 0 {
		a.readTimeout = DefaultReadTimeout
	}
	a.writeTimeout = cfg.WriteTimeout
	if a.writeTimeout <= 0 {
		a.writeTimeout = DefaultWriteTimeout
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.cors = newCORS(cfg.CORS, a.log)
	a.dash = dashboard.New(dashboard.Options{NotFound: http.HandlerFunc(a.notFound)})
	for _, rt := range a.routes() {
		a.mux.Handle(rt.pattern, rt.handler)
	}
	// The dashboard's static assets (script, style sheet, icon) are not part
	// of the API, so they stay out of the route table and the OpenAPI
	// document; the page itself is GET / in the table.
	a.mux.Handle("GET "+dashboard.AssetPrefix, a.dash)
	a.mux.HandleFunc("/", a.notFound)
	return a
}

// notFound answers every path no route matches.
func (a *API) notFound(w http.ResponseWriter, r *http.Request) {
	a.writeError(w, r, &apiError{http.StatusNotFound, "route_not_found", "no such route: " + limit.Echo(r.Method) + " " + limit.Echo(r.URL.Path)})
}

// route is one entry of the API's route table: a net/http pattern and its
// handler.
type route struct {
	pattern string
	handler http.Handler
}

// routes is the route table. New registers exactly these, and Patterns
// lists them, so the OpenAPI document's test checks what is really served.
func (a *API) routes() []route {
	metrics := a.cfg.Metrics
	if metrics == nil {
		metrics = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			a.writeError(w, r, &apiError{http.StatusNotFound, "route_not_found", "metrics are not served by this API"})
		})
	}
	return []route{
		{"POST /v1/apps", a.admin(a.createApp)},
		{"GET /v1/apps", a.admin(a.listApps)},
		{"DELETE /v1/apps/{app}", a.admin(a.deleteApp)},
		{"PATCH /v1/apps/{app}", a.admin(a.patchApp)},
		{"PUT /v1/apps/{app}/topics/{topic}", a.scoped(store.ScopeManage, a.createTopic)},
		{"GET /v1/apps/{app}/topics", a.scoped(store.ScopeManage, a.listTopics)},
		{"DELETE /v1/apps/{app}/topics/{topic}", a.scoped(store.ScopeManage, a.deleteTopic)},
		{"POST /v1/apps/{app}/topics/{topic}/messages", a.scoped(store.ScopePublish, a.publish)},
		{"POST /v1/apps/{app}/messages", a.scoped(store.ScopePublish, a.publishBatch)},
		{"GET /v1/apps/{app}/topics/{topic}/messages", a.scoped(store.ScopeSubscribe, a.history)},
		{"GET /v1/apps/{app}/topics/{topic}/events", a.streaming(a.topicEvents)},
		{"GET /v1/apps/{app}/events", a.streaming(a.appEvents)},
		{"POST /v1/apps/{app}/topics/{topic}/triggers", a.scoped(store.ScopeManage, a.createTrigger)},
		{"GET /v1/apps/{app}/topics/{topic}/triggers", a.scoped(store.ScopeManage, a.listTriggers)},
		{"DELETE /v1/apps/{app}/topics/{topic}/triggers/{id}", a.scoped(store.ScopeManage, a.deleteTrigger)},
		{"PATCH /v1/apps/{app}/topics/{topic}/triggers/{id}", a.scoped(store.ScopeManage, a.updateTrigger)},
		{"POST /v1/apps/{app}/topics/{topic}/triggers/{id}/test", a.scoped(store.ScopeManage, a.testTrigger)},
		{"GET /v1/apps/{app}/topics/{topic}/triggers/{id}/attempts", a.scoped(store.ScopeManage, a.listAttempts)},
		{"GET /v1/apps/{app}/dead-letters", a.scoped(store.ScopeManage, a.listDeadLetters)},
		{"POST /v1/apps/{app}/dead-letters/{id}/redrive", a.scoped(store.ScopeManage, a.redrive)},
		{"POST /v1/apps/{app}/tokens", a.scoped(store.ScopeManage, a.createToken)},
		{"GET /v1/apps/{app}/keys", a.scoped(store.ScopeManage, a.listKeys)},
		{"POST /v1/apps/{app}/keys", a.scoped(store.ScopeManage, a.createKey)},
		{"DELETE /v1/apps/{app}/keys/{id}", a.scoped(store.ScopeManage, a.revokeKey)},
		{"GET /v1/apps/{app}/stats", a.scoped(store.ScopeManage, a.appStats)},
		{"GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			a.writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		})},
		{"GET /readyz", http.HandlerFunc(a.readyz)},
		{"GET /metrics", metrics},
		{"GET /openapi.json", http.HandlerFunc(serveOpenAPI)},
		// The live dashboard for browsers; clients that do not ask for HTML
		// (curl, probes) get a line saying what this server is.
		{"GET /{$}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Add("Vary", "Accept")
			if strings.Contains(r.Header.Get("Accept"), "text/html") {
				a.dash.ServeHTTP(w, r)
				return
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = io.WriteString(w, "Herald is running.\n\nDashboard: open / in a browser. API: /v1 (described at /openapi.json), health: /healthz, readiness: /readyz, metrics: /metrics\n")
		})},
	}
}

// Patterns returns the pattern ("METHOD /path") of every route the API
// serves, from the same table New registers.
func (a *API) Patterns() []string {
	rs := a.routes()
	out := make([]string, len(rs))
	for i, rt := range rs {
		out[i] = rt.pattern
	}
	return out
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r = a.boundBody(w, r)
	if a.log.Enabled(r.Context(), slog.LevelDebug) {
		rec := &statusRecorder{ResponseWriter: w}
		start := time.Now()
		defer func() { a.logRequest(r, rec.status, time.Since(start)) }()
		w = rec
	}
	defer func() {
		// A bug in one handler must not take the server down with it.
		if v := recover(); v != nil {
			if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(v)
			}
			a.log.Error("handler panicked", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v))
			a.writeError(w, r, errors.New("panic"))
		}
	}()
	if a.cors.handle(w, r, a.writeError) {
		return
	}
	if err := checkQuery(r); err != nil {
		a.writeError(w, r, err)
		return
	}
	a.mux.ServeHTTP(w, r)
}

// apiError is an error with its HTTP status and code already decided.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.message }

// writeError is the one place errors become responses:
// {"error":{"code":"…","message":"…"}} with the right status.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var (
		ae      *apiError
		limited *limit.Refused
		unread  *bodyReadError
		tooBig  *http.MaxBytesError
		expired *auth.TokenExpiredError
		refused *webhook.RefusedError
	)
	status, code, msg := http.StatusInternalServerError, "internal", "internal error"
	switch {
	case errors.As(err, &ae):
		status, code, msg = ae.status, ae.code, ae.message
	case errors.As(err, &limited):
		retryAfter(w, limited.RetryAfter)
		status, code, msg = http.StatusTooManyRequests, "limit_reached", limited.Error()
		if limited.Kind == limit.KindPublishRate {
			code = "rate_limited"
		}
	case errors.As(err, &unread):
		ae := unread.apiError()
		status, code, msg = ae.status, ae.code, ae.message
	case errors.As(err, &expired):
		w.Header().Set("WWW-Authenticate", `Bearer realm="herald", error="invalid_token"`)
		status, code = http.StatusUnauthorized, "token_expired"
		msg = fmt.Sprintf("the token expired at %s; mint a new one (POST /v1/apps/{app}/tokens) and resume with ?last_event_id=",
			expired.ExpiredAt.UTC().Format(time.RFC3339))
	case errors.Is(err, auth.ErrTokenInvalid):
		w.Header().Set("WWW-Authenticate", `Bearer realm="herald", error="invalid_token"`)
		status, code, msg = http.StatusUnauthorized, "token_invalid", "the token is not valid: "+strings.TrimPrefix(err.Error(), auth.ErrTokenInvalid.Error()+": ")
	case errors.Is(err, auth.ErrUnauthenticated):
		w.Header().Set("WWW-Authenticate", `Bearer realm="herald"`)
		status, code, msg = http.StatusUnauthorized, "unauthenticated", "a valid key is required: Authorization: Bearer <key>"
	case errors.Is(err, auth.ErrForbidden):
		status, code, msg = http.StatusForbidden, "forbidden", err.Error()
	case errors.As(err, &tooBig), errors.Is(err, pubsub.ErrTooLarge):
		status, code, msg = http.StatusRequestEntityTooLarge, "message_too_large",
			fmt.Sprintf("message larger than the limit of %d bytes", a.maxMessageBytes())
	case errors.Is(err, pubsub.ErrTooDeep):
		status, code, msg = http.StatusBadRequest, "message_too_deep",
			fmt.Sprintf("the message nests arrays and objects deeper than the limit of %d levels", a.maxDepth())
	case errors.Is(err, pubsub.ErrInvalid):
		// Replace, not TrimPrefix: a batch's error starts "message N: ".
		status, code, msg = http.StatusBadRequest, "invalid_request", strings.Replace(err.Error(), "invalid: ", "", 1)
	case errors.As(err, &refused):
		status, code, msg = http.StatusBadRequest, "address_refused", refused.Error()
	case errors.Is(err, webhook.ErrInvalidURL):
		status, code, msg = http.StatusBadRequest, "invalid_url", err.Error()
	case errors.Is(err, webhook.ErrInvalidSecret):
		status, code, msg = http.StatusBadRequest, "invalid_secret", err.Error()
	case errors.Is(err, webhook.ErrTooManyTriggers):
		status, code, msg = http.StatusConflict, "too_many_triggers",
			fmt.Sprintf("a topic has at most %d triggers; delete one first", webhook.MaxTriggersPerTopic)
	case errors.Is(err, sse.ErrBadLastEventID):
		status, code, msg = http.StatusBadRequest, "invalid_last_event_id", err.Error()
	case errors.Is(err, store.ErrNotFound):
		status, code, msg = http.StatusNotFound, "not_found", "not found"
	case errors.Is(err, store.ErrConflict):
		status, code, msg = http.StatusConflict, "conflict", "already exists"
	case errors.Is(err, store.ErrCommitUnknown):
		status, code, msg = http.StatusServiceUnavailable, "commit_unknown",
			"the connection to the database was lost while this was committed: it may or may not be stored. "+
				"Retrying with the same Idempotency-Key is safe: it is stored at most once"
	case errors.Is(err, store.ErrFull):
		retryAfter(w, storeFullRetry)
		status, code, msg = http.StatusServiceUnavailable, "unavailable", "the server's storage is full; retry later"
	case errors.Is(err, store.ErrUnavailable):
		status, code, msg = http.StatusServiceUnavailable, "unavailable", "the store is unavailable; retry"
	case errors.Is(err, sse.ErrShuttingDown), errors.Is(err, broadcast.ErrUnavailable):
		status, code, msg = http.StatusServiceUnavailable, "unavailable", "temporarily unavailable; retry"
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		return // the client went away; nobody is listening
	}
	if status == http.StatusInternalServerError {
		a.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if status == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") == "" {
		// RFC 9110 (15.5.2): every 401 names the scheme that would work,
		// including the admin routes' and admin_token_in_url.
		w.Header().Set("WWW-Authenticate", `Bearer realm="herald"`)
	}
	if (status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests) && w.Header().Get("Retry-After") == "" {
		retryAfter(w, time.Second)
	}
	// An error caused by one message of a batch publish names it, in
	// "index" and once at the start of the message: errors whose text is
	// the ItemError's have "message N: " already, the others get it here,
	// and no item error's own text names its index.
	var item *store.ItemError
	if errors.As(err, &item) {
		if prefix := fmt.Sprintf("message %d: ", item.Index); !strings.HasPrefix(msg, prefix) {
			msg = prefix + msg
		}
	}
	body := map[string]any{"code": code, "message": msg}
	if item != nil {
		body["index"] = item.Index
	}
	afterAnswer := abandonBody(w, r)
	a.writeJSON(w, status, map[string]any{"error": body})
	afterAnswer()
}

// maxMessageBytes and maxDepth are the Publisher's limits, for the
// errors that name them; 0 for an API built without one (as some tests
// are), rather than a panic inside writeError.
func (a *API) maxMessageBytes() int {
	if a.cfg.Publisher == nil {
		return 0
	}
	return a.cfg.Publisher.MaxMessageBytes()
}

func (a *API) maxDepth() int {
	if a.cfg.Publisher == nil {
		return 0
	}
	return a.cfg.Publisher.MaxDepth()
}

func (a *API) writeJSON(w http.ResponseWriter, status int, v any) {
	// Encoded before the deadline starts, so that a large answer on a slow
	// machine does not spend its time to reach the client on encoding.
	var b bytes.Buffer
	if err := encodeJSON(&b, v); err != nil {
		a.log.Error("encode answer", "err", err)
		a.writeJSONBytes(w, http.StatusInternalServerError, ErrorBody("internal", "internal error"))
		return
	}
	a.writeJSONBytes(w, status, b.Bytes())
}

// boundAnswer gives the answer about to be written writeTimeout to reach
// the client. Without it a client that stops reading an answer larger than
// the socket buffers (a page of history, a list) would hold its handler
// and connection for as long as it liked, and a connection busy writing is
// not one the connection cap closes to make room. The deadline starts at
// the answer, not at the request, so a handler that waits (a publish's
// commit) does not use it up. It covers the end of the answer too, which
// net/http writes after the handler returns, and net/http lifts it then
// (the server sets no WriteTimeout), so it never outlives the answer.
func (a *API) boundAnswer(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(a.writeTimeout)) // unsupported: unbounded, as before
}

// encodeJSON writes v to w as every answer is written: HTML characters
// left as they are, and a newline after.
func encodeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// ErrorBody is the body of an error answer with code and message, as
// writeError writes it, for an answer the server writes outside the API:
// the 408 of a connection it closes to make room, whose handler is still
// waiting for the body.
func ErrorBody(code, message string) []byte {
	var b bytes.Buffer
	_ = encodeJSON(&b, map[string]any{"error": map[string]any{"code": code, "message": message}}) // a map of strings always encodes
	return b.Bytes()
}

// writeJSONBytes is writeJSON for a body already encoded, newline
// included.
func (a *API) writeJSONBytes(w http.ResponseWriter, status int, body []byte) {
	a.boundAnswer(w)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body) // as in writeJSON
}

// TokenCookie is the cookie that may carry a browser token to the events
// endpoints, for same-site deployments where the backend sets it HttpOnly
// so page scripts never see the token.
const TokenCookie = "herald_token"

// credSource is where a request's credential came from.
type credSource int

const (
	fromHeader credSource = iota // Authorization: Bearer, or none at all
	fromQuery                    // ?access_token=
	fromCookie                   // the TokenCookie
)

// credential returns the request's credential and where it came from: the
// Authorization header; on the events endpoints, where EventSource cannot
// send headers, also ?access_token= and then the cookie.
func credential(r *http.Request, stream bool) (string, credSource) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, token, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(token), fromHeader
		}
		return "", fromHeader
	}
	if !stream {
		return "", fromHeader
	}
	if t := r.URL.Query().Get("access_token"); t != "" {
		return t, fromQuery
	}
	if c, err := r.Cookie(TokenCookie); err == nil {
		return c.Value, fromCookie
	}
	return "", fromHeader
}

func (a *API) admin(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, _ := credential(r, false)
		if a.cfg.Admin.Verify(token) {
			next(w, r)
			return
		}
		// A valid app key or browser token is a credential that may not do
		// this (403), as the error list says; anything else is none (401).
		valid := false
		if auth.LooksLikeToken(token) {
			_, err := a.verifyToken(token)
			valid = err == nil
		} else if _, err := a.cfg.Keys.Verify(r.Context(), token); err == nil {
			valid = true
		}
		if valid {
			a.writeError(w, r, fmt.Errorf("%w: only the admin token manages apps; an app's key or token cannot", auth.ErrForbidden))
			return
		}
		a.writeError(w, r, &apiError{http.StatusUnauthorized, "unauthenticated", "the admin token is required: Authorization: Bearer <admin token>"})
	}
}

// scoped admits a key of the path's app that holds scope, or the admin token.
func (a *API) scoped(scope store.Scope, next http.HandlerFunc) http.HandlerFunc {
	return a.authorize(scope, false, next)
}

// streaming admits what scoped(ScopeSubscribe) does, and also a browser
// token of the path's app, from the header, ?access_token= or the cookie.
// Which topics the token allows is checked by the handler, which knows them.
func (a *API) streaming(next http.HandlerFunc) http.HandlerFunc {
	h := a.authorize(store.ScopeSubscribe, true, next)
	return func(w http.ResponseWriter, r *http.Request) {
		unboundBody(w, r)
		h(w, r)
	}
}

func (a *API) authorize(scope store.Scope, stream bool, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		appID := r.PathValue("app")
		token, from := credential(r, stream)
		if from == fromQuery && a.cfg.Admin.Verify(token) {
			// URLs end up in logs, browser history and Referer headers:
			// the one credential that manages every app never goes there.
			a.writeError(w, r, &apiError{http.StatusUnauthorized, "admin_token_in_url",
				"the admin token is refused in ?access_token=; send it as Authorization: Bearer, and rotate it if this URL was logged"})
			return
		}
		if from == fromHeader && a.cfg.Admin.Verify(token) {
			if _, err := a.cfg.AppGetter.GetApp(r.Context(), appID); err != nil {
				a.writeError(w, r, appErr(err))
				return
			}
			next(w, r)
			return
		}
		if from == fromCookie || auth.LooksLikeToken(token) {
			// The cookie carries browser tokens only: an app key or the
			// admin token there would be sent by the browser to every
			// request of the path, which is not what keys are for.
			bt, err := a.verifyToken(token)
			switch {
			case err != nil:
				a.writeError(w, r, err)
			case bt.App != appID:
				a.writeError(w, r, fmt.Errorf("%w: this token belongs to another app", auth.ErrForbidden))
			case !stream:
				a.writeError(w, r, fmt.Errorf("%w: a browser token only opens event streams (GET …/events); use an app key here", auth.ErrForbidden))
			default:
				if err := a.cfg.Keys.KeyValid(r.Context(), bt.KeyID); err != nil {
					a.writeError(w, r, err)
					return
				}
				next(w, r.WithContext(context.WithValue(r.Context(), browserTokenKey{}, bt)))
			}
			return
		}
		k, err := a.cfg.Keys.Verify(r.Context(), token)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		if k.AppID != appID {
			a.writeError(w, r, fmt.Errorf("%w: this key belongs to another app", auth.ErrForbidden))
			return
		}
		if !auth.HasScope(k, scope) {
			a.writeError(w, r, fmt.Errorf("%w: this key lacks the %q scope", auth.ErrForbidden, scope))
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, k)))
	}
}

func appErr(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return &apiError{http.StatusNotFound, "app_not_found", "no such app"}
	}
	return err
}

func topicErr(topic string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return &apiError{http.StatusNotFound, "topic_not_found", fmt.Sprintf("no topic %q in this app; create it with PUT", topic)}
	}
	return err
}

type appJSON struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt timestamp `json:"created_at"`
	Keys      []keyJSON `json:"keys,omitempty"`
}

type keyJSON struct {
	Key    string        `json:"key"`
	Scopes []store.Scope `json:"scopes"`
}

func (a *API) createApp(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name string `json:"name"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	out, err := a.cfg.Apps.CreateApp(r.Context(), req.Name)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	resp := appJSON{ID: out.App.ID, Name: out.App.Name, CreatedAt: timestamp(out.App.CreatedAt)}
	for _, k := range out.Keys {
		resp.Keys = append(resp.Keys, keyJSON{Key: k.Key, Scopes: k.Scopes})
	}
	a.writeJSON(w, http.StatusCreated, resp)
}

func (a *API) listApps(w http.ResponseWriter, r *http.Request) {
	apps, err := a.cfg.Apps.ListApps(r.Context())
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	resp := make([]appJSON, 0, len(apps))
	for _, app := range apps {
		resp = append(resp, appJSON{ID: app.ID, Name: app.Name, CreatedAt: timestamp(app.CreatedAt)})
	}
	a.writeJSON(w, http.StatusOK, map[string]any{"apps": resp})
}

func (a *API) deleteApp(w http.ResponseWriter, r *http.Request) {
	if err := a.cfg.Apps.DeleteApp(r.Context(), r.PathValue("app")); err != nil {
		a.writeError(w, r, appErr(err))
		return
	}
	a.cfg.Keys.Forget(r.PathValue("app"))
	if a.cfg.Limits != nil {
		a.cfg.Limits.Forget(r.PathValue("app"))
	}
	w.WriteHeader(http.StatusNoContent)
}

type topicJSON struct {
	Name        string    `json:"name"`
	LastID      string    `json:"last_id"`
	Subscribers int       `json:"subscribers"`
	CreatedAt   timestamp `json:"created_at"`
}

func (a *API) topicJSON(t store.Topic) topicJSON {
	return topicJSON{
		Name: t.Name, LastID: strconv.FormatUint(t.LastID, 10), CreatedAt: timestamp(t.CreatedAt),
		Subscribers: a.cfg.Streams.Subscribers(t.AppID, t.Name),
	}
}

func (a *API) createTopic(w http.ResponseWriter, r *http.Request) {
	t, created, err := a.cfg.Topics.CreateTopic(r.Context(), r.PathValue("app"), r.PathValue("topic"))
	if err != nil {
		a.writeError(w, r, appErr(err))
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	a.writeJSON(w, status, a.topicJSON(t))
}

func (a *API) listTopics(w http.ResponseWriter, r *http.Request) {
	ts, err := a.cfg.Topics.ListTopics(r.Context(), r.PathValue("app"))
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	resp := make([]topicJSON, 0, len(ts))
	for _, t := range ts {
		resp = append(resp, a.topicJSON(t))
	}
	a.writeJSON(w, http.StatusOK, map[string]any{"topics": resp})
}

func (a *API) deleteTopic(w http.ResponseWriter, r *http.Request) {
	topic := r.PathValue("topic")
	if err := a.cfg.Topics.DeleteTopic(r.Context(), r.PathValue("app"), topic); err != nil {
		a.writeError(w, r, topicErr(topic, err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// timestamp is a time as the API writes it: event.TimeLayout, the layout of
// published_at in events and webhook bodies too.
type timestamp time.Time

// MarshalJSON writes t in event.TimeLayout.
func (t timestamp) MarshalJSON() ([]byte, error) {
	b := append(make([]byte, 0, 30), '"')
	b = time.Time(t).UTC().AppendFormat(b, event.TimeLayout)
	return append(b, '"'), nil
}

type messageJSON struct {
	ID          string          `json:"id"`
	Topic       string          `json:"topic"`
	Message     json.RawMessage `json:"message,omitempty"`
	PublishedAt timestamp       `json:"published_at"`
}

func (a *API) publish(w http.ResponseWriter, r *http.Request) {
	topic := r.PathValue("topic")
	if a.cfg.Limits != nil {
		// Before the body is read: a refused publish costs no reading.
		if err := a.cfg.Limits.AllowPublish(r.Context(), r.PathValue("app"), 1); err != nil {
			a.writeError(w, r, appErr(err))
			return
		}
	}
	// The limit is on compact JSON; the raw body may carry whitespace, so it
	// gets room for that, bounded so a huge body is refused while reading.
	body, err := readBody(w, r, int64(4*a.cfg.Publisher.MaxMessageBytes()))
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	p, err := a.cfg.Publisher.PublishRequest(r.Context(), pubsub.Publication{
		AppID: r.PathValue("app"), Topic: topic, Body: body, IdempotencyKey: r.Header.Get("Idempotency-Key"),
	})
	if errors.Is(err, store.ErrConflict) {
		err = &apiError{http.StatusConflict, "idempotency_key_reused",
			"this Idempotency-Key was used in the last 24 hours for a publish to another topic"}
	}
	if err != nil {
		a.writeError(w, r, topicErr(topic, err))
		return
	}
	if p.Replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	} else if a.cfg.Stats != nil {
		a.cfg.Stats.Published(p.Message.AppID, 1)
	}
	a.writeJSONBytes(w, http.StatusAccepted, append(appendPublished(make([]byte, 0, 96), p.Message, false), '\n'))
}

// appendPublished appends the JSON of the answer naming a published
// message, byte for byte what encoding/json writes for publishedJSON(m)
// (followed by "replayed":true for a batch's replayed message). Every
// publish answers with it, so it is built by hand: encoding/json's
// reflection and allocations were a fifth of the publish handler's CPU.
func appendPublished(b []byte, m store.Message, replayed bool) []byte {
	b = append(b, `{"id":"`...)
	b = strconv.AppendUint(b, m.ID, 10)
	b = append(b, `","topic":`...)
	b = event.AppendString(b, m.Topic)
	b = append(b, `,"published_at":"`...)
	b = m.PublishedAt.UTC().AppendFormat(b, event.TimeLayout)
	if replayed {
		return append(b, `","replayed":true}`...)
	}
	return append(b, `"}`...)
}

// publishedJSON is the answer naming a published message: its id, topic
// and time, without the body the publisher already has.
func publishedJSON(m store.Message) messageJSON {
	return messageJSON{ID: strconv.FormatUint(m.ID, 10), Topic: m.Topic, PublishedAt: timestamp(m.PublishedAt)}
}

// MaxHistoryPage is the most messages one history request returns.
const MaxHistoryPage = 1000

func (a *API) history(w http.ResponseWriter, r *http.Request) {
	topic := r.PathValue("topic")
	if err := pubsub.ValidateTopic(topic); err != nil {
		a.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	var after uint64
	if s := q.Get("after"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			a.writeError(w, r, fmt.Errorf("%w: after must be a message id", pubsub.ErrInvalid))
			return
		}
		after = v
	}
	limit := 100
	if s := q.Get("limit"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > MaxHistoryPage {
			a.writeError(w, r, fmt.Errorf("%w: limit must be 1 to %d", pubsub.ErrInvalid, MaxHistoryPage))
			return
		}
		limit = v
	}
	msgs, err := a.cfg.Topics.History(r.Context(), r.PathValue("app"), topic, after, limit)
	if err != nil {
		a.writeError(w, r, topicErr(topic, err))
		return
	}
	resp := make([]messageJSON, 0, len(msgs))
	for _, m := range msgs {
		j := publishedJSON(m)
		j.Message = m.Body
		resp = append(resp, j)
	}
	a.writeJSON(w, http.StatusOK, map[string]any{"messages": resp})
}

func (a *API) topicEvents(w http.ResponseWriter, r *http.Request) {
	a.stream(w, r, []string{r.PathValue("topic")})
}

func (a *API) appEvents(w http.ResponseWriter, r *http.Request) {
	topics := r.URL.Query()["topic"]
	if len(topics) == 0 {
		a.writeError(w, r, fmt.Errorf("%w: name at least one topic: ?topic=a&topic=b", pubsub.ErrInvalid))
		return
	}
	if len(topics) > MaxTopicsPerStream {
		a.writeError(w, r, fmt.Errorf("%w: at most %d topics per stream", pubsub.ErrInvalid, MaxTopicsPerStream))
		return
	}
	a.stream(w, r, topics)
}

func (a *API) stream(w http.ResponseWriter, r *http.Request, topics []string) {
	for _, t := range topics {
		if err := pubsub.ValidateTopic(t); err != nil {
			a.writeError(w, r, err)
			return
		}
	}
	var until time.Time
	var keyID string
	viaToken := false
	if k, ok := caller(r); ok {
		keyID = k.ID
	}
	if bt, ok := r.Context().Value(browserTokenKey{}).(auth.BrowserToken); ok {
		keyID, viaToken = bt.KeyID, true
		for _, t := range topics {
			if !bt.Allows(t) {
				a.writeError(w, r, &apiError{http.StatusForbidden, "topic_not_allowed",
					fmt.Sprintf("this token does not allow topic %q; it allows: %s", t, strings.Join(bt.Topics, ", "))})
				return
			}
		}
		until = bt.ExpiresAt // the stream ends when the token does
	}
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = r.URL.Query().Get("last_event_id")
	}
	release, ok := a.acquireStream(w, r)
	if !ok {
		return
	}
	err := a.cfg.Streams.Serve(w, r, sse.Request{
		App: r.PathValue("app"), Topics: topics, LastEventID: last, Until: until, ReleaseFunc: release,
		KeyID: keyID, KeyValidFunc: a.keyStillValid(keyID, viaToken),
	})
	if err != nil {
		var name string
		if len(topics) == 1 {
			name = topics[0]
		} else {
			name = strings.Join(topics, ", ")
		}
		a.writeError(w, r, topicErr(name, err))
	}
}

// keyStillValid is the check a stream opened with key keyID (or with a
// browser token it minted, viaToken) makes once it is registered for
// revocations. Nil when there is no key.
func (a *API) keyStillValid(keyID string, viaToken bool) func(context.Context) error {
	if keyID == "" {
		return nil
	}
	return func(ctx context.Context) error {
		err := a.cfg.Keys.KeyValid(ctx, keyID)
		if !viaToken && errors.Is(err, auth.ErrKeyRevoked) {
			return auth.ErrUnauthenticated
		}
		return err
	}
}

func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	if a.cfg.ReadyFunc != nil {
		if err := a.cfg.ReadyFunc(); err != nil {
			a.writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": err.Error()})
			return
		}
	}
	a.writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// decodeJSON reads a small JSON request body into v.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if unread := (*bodyReadError)(nil); errors.As(err, &unread) {
			return err
		}
		return fmt.Errorf("%w: request body: %s", pubsub.ErrInvalid, err.Error())
	}
	return nil
}
