package httpapi

import (
	"log/slog"
	"net/http"
	"net/url"
	"time"
)

// statusRecorder remembers the status a handler answered with, for the
// request log. Unwrap lets http.ResponseController reach the real writer,
// so hijacking, flushing and write deadlines work through it.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap returns the underlying ResponseWriter.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// logRequest logs one request at debug level. The query is logged with
// credentials redacted: browser tokens and keys travel in ?access_token=,
// and a log line must never be a way to obtain one.
func (a *API) logRequest(r *http.Request, status int, d time.Duration) {
	if status == 0 {
		status = http.StatusOK // a handler that wrote nothing, or a stream that took the connection over
	}
	a.log.LogAttrs(r.Context(), slog.LevelDebug, "request",
		slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.String("query", redactedQuery(r.URL)), slog.String("proto", r.Proto),
		slog.Int("status", status), slog.Duration("duration", d))
}

// redactedQuery is u's query with the value of access_token replaced. A
// query that does not parse is not logged at all: what it holds is unknown.
func redactedQuery(u *url.URL) string {
	if u.RawQuery == "" {
		return ""
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return "(unparsable, not logged)"
	}
	if q.Has("access_token") {
		q.Set("access_token", "REDACTED")
	}
	return q.Encode()
}
