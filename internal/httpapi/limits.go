package httpapi

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/heraldhq/herald/internal/pubsub"
	"github.com/heraldhq/herald/internal/store"
)

// DefaultReadTimeout bounds reading a request body when
// Config.ReadTimeout is 0.
const DefaultReadTimeout = 10 * time.Second

// DefaultWriteTimeout is Config.WriteTimeout's default: as long as a
// stream's write may take (the server's --write-timeout).
const DefaultWriteTimeout = 30 * time.Second

// streamRetryAfter is the Retry-After of a stream refused because the node
// is full: long enough for others to leave, short enough that a browser's
// EventSource (which retries on its own after a few seconds) is not lost.
const streamRetryAfter = 5 * time.Second

// storeFullRetry is the Retry-After of a write refused because the disk
// is full: freeing space takes an operator, not a moment.
const storeFullRetry = 30 * time.Second

// requestBody is a request body read under a deadline. It remembers
// whether it was read to the end: an answer sent before that closes the
// connection (see writeError), so the server never waits for the rest of a
// body it does not want. A read that fails is reported as a
// *bodyReadError, which is the client's fault, never the server's.
type requestBody struct {
	io.ReadCloser
	rc      http.ResponseController
	sawEOF  bool
	timeout time.Duration
}

// boundRequest is the request boundBody serves and its body, allocated
// together: every request with a body makes one.
type boundRequest struct {
	req  http.Request
	body requestBody
}

func (b *requestBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		if !b.sawEOF {
			b.sawEOF = true
			// The body is in: a handler slower than the read timeout must
			// not have its request cancelled by net/http's background read
			// (which watches for the client leaving) missing the deadline.
			_ = b.rc.SetReadDeadline(time.Time{})
		}
	default:
		var mbe *http.MaxBytesError
		if !errors.As(err, &mbe) {
			err = &bodyReadError{err: err, timeout: b.timeout}
		}
	}
	return n, err
}

// readBody reads r's body, refusing one over limit bytes with an
// *http.MaxBytesError. A body whose length is declared (and within limit)
// is read into a buffer of that size: the service keeps a compact message
// as it came (see pubsub.Publication), and net/http already stops a body
// at its declared length.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	n := r.ContentLength
	if n < 0 || n > limit {
		return io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	}
	body := make([]byte, n, n+1)
	if _, err := io.ReadFull(r.Body, body); err != nil {
		return nil, err
	}
	// Read on to the end, as io.ReadAll would: the end is what clears the
	// read deadline (requestBody.Read). The byte of room is for that read.
	switch m, err := r.Body.Read(body[n : n+1]); {
	case m > 0:
		return nil, &bodyReadError{err: errors.New("the body is longer than its Content-Length")}
	case err != nil && !errors.Is(err, io.EOF):
		return nil, err
	}
	return body, nil
}

// bodyReadError is a request body that could not be read: the client
// went away mid-body, sent a malformed chunk, or was slower than the read
// timeout.
type bodyReadError struct {
	err     error
	timeout time.Duration
}

func (e *bodyReadError) Error() string { return "read request body: " + e.err.Error() }
func (e *bodyReadError) Unwrap() error { return e.err }

// apiError is the answer to a body that could not be read. The client
// is likely gone or misbehaving; the answer is sent in case it is not.
func (e *bodyReadError) apiError() *apiError {
	if errors.Is(e.err, os.ErrDeadlineExceeded) {
		return &apiError{http.StatusRequestTimeout, "request_timeout",
			fmt.Sprintf("the request body did not arrive within %s", e.timeout)}
	}
	return &apiError{http.StatusBadRequest, "body_unreadable", "the request body could not be read: it ended early or is malformed"}
}

// boundBody puts the read timeout on r's body, if it has one, and returns
// the request to serve. Streams clear the deadline (see unboundBody): they
// read nothing after their headers and live far longer.
func (a *API) boundBody(w http.ResponseWriter, r *http.Request) *http.Request {
	if r.Body == nil || r.Body == http.NoBody {
		return r
	}
	if r.ProtoMajor == 1 && len(r.TransferEncoding) > 0 {
		// net/http drops a Content-Length sent beside Transfer-Encoding
		// without a word (the encoding wins). A proxy in front that went
		// by the Content-Length would take the rest of the chunked body
		// for the next request, and send it on this connection: a
		// smuggled request. A chunked request therefore closes its
		// connection after its answer, as RFC 9112 (6.3) asks when both
		// are present; clients pay one reconnect.
		w.Header().Set("Connection", "close")
	}
	// A shallow copy: net/http keeps the original request, and must keep
	// its own body to decide what to do with what is left of it.
	b := &boundRequest{req: *r, body: requestBody{ReadCloser: r.Body, rc: *http.NewResponseController(w), timeout: a.readTimeout}}
	b.req.Body = &b.body
	// The deadline covers the connection's reads (HTTP/1.x) or the
	// request's body (HTTP/2); where unsupported, the body is unbounded
	// as before.
	_ = b.body.rc.SetReadDeadline(time.Now().Add(a.readTimeout))
	return &b.req
}

// unboundBody lifts the read deadline boundBody set, for a stream.
func unboundBody(w http.ResponseWriter, r *http.Request) {
	if b, ok := r.Body.(*requestBody); ok {
		_ = b.rc.SetReadDeadline(time.Time{})
	}
}

// drainGrace is how long the rest of an unwanted body may take to arrive
// once the answer is sent: a client that sent it whole loses nothing (its
// bytes are read, so closing sends no reset that could destroy the
// answer), and one that never sends it holds its connection no longer.
const drainGrace = 250 * time.Millisecond

// abandonBody prepares an answer sent before r's body was read to its
// end, if it was not: on HTTP/1.x the connection closes after the answer,
// instead of waiting for the rest of the body (which net/http otherwise
// reads, up to 256 KiB, before the answer or after it, for as long as the
// client cares to take). The returned func, called once the answer is
// written, lets what is left of the body arrive for drainGrace at most.
func abandonBody(w http.ResponseWriter, r *http.Request) (afterAnswer func()) {
	b, ok := r.Body.(*requestBody)
	if !ok || b.sawEOF {
		return func() {}
	}
	if r.ProtoMajor == 1 {
		w.Header().Set("Connection", "close")
	}
	return func() { _ = b.rc.SetReadDeadline(time.Now().Add(min(drainGrace, b.timeout))) }
}

// acquireStream takes a slot among the node's streams (or answers 503)
// and one among its app's (or answers 429). The caller passes release to
// the stream, which calls it when it ends.
func (a *API) acquireStream(w http.ResponseWriter, r *http.Request) (release func(), ok bool) {
	if !a.streams.TryAcquire("", a.cfg.MaxStreams) {
		retryAfter(w, streamRetryAfter)
		a.writeError(w, r, &apiError{http.StatusServiceUnavailable, "too_many_streams",
			fmt.Sprintf("this node holds its most event streams (%d); retry later or on another node", a.cfg.MaxStreams)})
		return nil, false
	}
	releaseNode := func() { a.streams.Release("") }
	if a.cfg.Limits == nil {
		return releaseNode, true
	}
	releaseApp, err := a.cfg.Limits.AcquireStream(r.Context(), r.PathValue("app"))
	if err != nil {
		releaseNode()
		a.writeError(w, r, appErr(err))
		return nil, false
	}
	return func() { releaseApp(); releaseNode() }, true
}

// limitsJSON is the limits object of PATCH /v1/apps/{app}: 0 or absent
// takes the server's default, -1 is unlimited.
type limitsJSON struct {
	Streams      *int     `json:"streams,omitempty"`
	PublishRate  *float64 `json:"publish_rate,omitempty"`
	PublishBurst *int     `json:"publish_burst,omitempty"`
	Topics       *int     `json:"topics,omitempty"`
	Triggers     *int     `json:"triggers,omitempty"`
}

// patchApp sets an app's own limits. The limits given replace the app's
// own limits as a whole; the answer gives them and those in force.
func (a *API) patchApp(w http.ResponseWriter, r *http.Request) {
	if a.cfg.AppLimits == nil || a.cfg.Limits == nil {
		a.notFound(w, r)
		return
	}
	var req struct {
		Limits *limitsJSON `json:"limits"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	if req.Limits == nil {
		a.writeError(w, r, fmt.Errorf(`%w: give {"limits":{…}}: streams, publish_rate, publish_burst, topics, triggers (0 the default, -1 unlimited)`, pubsub.ErrInvalid))
		return
	}
	own, err := req.Limits.appLimits()
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	app := r.PathValue("app")
	if err := a.cfg.AppLimits.SetAppLimits(r.Context(), app, own); err != nil {
		a.writeError(w, r, appErr(err))
		return
	}
	a.cfg.Limits.Forget(app)
	eff, err := a.cfg.Limits.Limits(r.Context(), app)
	if err != nil {
		a.writeError(w, r, appErr(err))
		return
	}
	a.writeJSON(w, http.StatusOK, map[string]any{"id": app, "limits": own, "effective": eff})
}

func (l *limitsJSON) appLimits() (store.AppLimits, error) {
	var out store.AppLimits
	count := func(name string, p *int, dst *int) error {
		if p == nil {
			return nil
		}
		if *p < -1 {
			return fmt.Errorf("%w: limits.%s must be -1 (unlimited), 0 (the default) or positive", pubsub.ErrInvalid, name)
		}
		*dst = *p
		return nil
	}
	if err := count("streams", l.Streams, &out.Streams); err != nil {
		return out, err
	}
	if err := count("publish_burst", l.PublishBurst, &out.PublishBurst); err != nil {
		return out, err
	}
	if err := count("topics", l.Topics, &out.Topics); err != nil {
		return out, err
	}
	if err := count("triggers", l.Triggers, &out.Triggers); err != nil {
		return out, err
	}
	if p := l.PublishRate; p != nil {
		if math.IsNaN(*p) || math.IsInf(*p, 0) || (*p < 0 && *p != -1) {
			return out, fmt.Errorf("%w: limits.publish_rate must be -1 (unlimited), 0 (the default) or positive", pubsub.ErrInvalid)
		}
		out.PublishRate = *p
	}
	return out, nil
}

// retryAfter sets the Retry-After header to d, rounded up to seconds.
func retryAfter(w http.ResponseWriter, d time.Duration) {
	secs := int64((d + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
}

// maxQueryParams is net/url's limit on the parameters of one query
// string (its urlmaxqueryparams setting).
const maxQueryParams = 10_000

// checkQuery refuses a query string of more than maxQueryParams
// parameters. net/http's Request.URL.Query drops every parameter past
// them without a word: a stream of 50,000 topics would be told it named
// none. (Other malformed parts are left to it: it keeps what parses.)
func checkQuery(r *http.Request) error {
	if n := strings.Count(r.URL.RawQuery, "&") + strings.Count(r.URL.RawQuery, ";") + 1; n > maxQueryParams {
		return &apiError{http.StatusBadRequest, "invalid_query",
			fmt.Sprintf("the query string has %d parameters; at most 10,000 are read", n)}
	}
	return nil
}
