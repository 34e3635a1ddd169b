package httpapi

import (
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
)

// What CORS answers tell the browsers of other origins.
const (
	corsAllowMethods = "GET, POST, PUT, DELETE"
	// Authorization and Content-Type for the JSON API, Idempotency-Key
	// for retried publishes; Last-Event-ID and Cache-Control for
	// fetch-based SSE clients that send them themselves.
	corsAllowHeaders = "Authorization, Content-Type, Idempotency-Key, Last-Event-ID, Cache-Control"
	// WWW-Authenticate says why a 401 happened (error="invalid_token");
	// Idempotent-Replayed that a publish repeated an earlier one. Stream
	// positions travel in the body (id: lines).
	corsExposeHeaders = "WWW-Authenticate, Idempotent-Replayed"
	// corsMaxAge is how long a browser may cache a preflight: two hours,
	// the most Chromium honours.
	corsMaxAge = 2 * 60 * 60
	// maxWarnedOrigins bounds the memory of origins already warned about.
	maxWarnedOrigins = 1024
)

// cors applies the --cors-origins policy. A listed origin gets its exact
// value echoed with credentials allowed (a browser refuses "*" on a
// credentialed request); "*" admits any other origin without credentials;
// any other cross-origin request gets no CORS headers, which makes the
// browser refuse it, and is logged.
type cors struct {
	exact map[string]bool
	any   bool
	on    bool
	log   *slog.Logger

	mu     sync.Mutex
	warned map[string]bool // guarded by mu; refused origins already logged at warn
}

func newCORS(origins []string, log *slog.Logger) *cors {
	c := &cors{exact: make(map[string]bool), log: log, on: len(origins) > 0, warned: make(map[string]bool)}
	for _, o := range origins {
		if o == "*" {
			c.any = true
		} else {
			c.exact[strings.ToLower(o)] = true
		}
	}
	return c
}

// handle sets the CORS headers of r's response before the route runs, so
// that they reach the client on every answer, errors and SSE streams
// included (sse copies w.Header() into the head of a hijacked stream). It
// reports whether it answered the request itself, as it does preflights.
func (c *cors) handle(w http.ResponseWriter, r *http.Request, writeError func(http.ResponseWriter, *http.Request, error)) bool {
	h := w.Header()
	if len(c.exact) > 0 {
		// The answer depends on Origin: a cache must not give one origin's
		// answer to another.
		h.Add("Vary", "Origin")
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
	switch {
	case c.exact[strings.ToLower(origin)]:
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
	case c.any:
		h.Set("Access-Control-Allow-Origin", "*")
	case sameOrigin(r, origin):
		return false // not a cross-origin request: nothing to allow
	default:
		c.refuse(r, origin)
		if preflight {
			writeError(w, r, &apiError{http.StatusForbidden, "origin_not_allowed",
				"origin " + strconv.Quote(origin) + " may not call this server; add it to --cors-origins"})
			return true
		}
		return false
	}
	if !preflight {
		h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
		return false
	}
	h.Set("Access-Control-Allow-Methods", corsAllowMethods)
	h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
	h.Set("Access-Control-Max-Age", strconv.Itoa(corsMaxAge))
	w.WriteHeader(http.StatusNoContent)
	return true
}

// refuse logs a refused origin: at warn the first time (an operator who
// forgot --cors-origins needs to see it), then at debug, so a busy page on a
// wrong origin cannot flood the log.
func (c *cors) refuse(r *http.Request, origin string) {
	c.mu.Lock()
	first := !c.warned[origin]
	if first {
		if len(c.warned) >= maxWarnedOrigins {
			c.warned = make(map[string]bool)
		}
		c.warned[origin] = true
	}
	c.mu.Unlock()
	level, msg := slog.LevelDebug, "cross-origin request refused"
	if first {
		level = slog.LevelWarn
		if c.on {
			msg = "cross-origin request refused: origin not in --cors-origins (further requests from it are logged at debug)"
		} else {
			msg = "cross-origin request refused: CORS is off; set --cors-origins (further requests from it are logged at debug)"
		}
	}
	c.log.Log(r.Context(), level, msg, "origin", origin, "method", r.Method, "path", r.URL.Path)
}

// sameOrigin reports whether origin names the host the request was sent
// to. Browsers send Origin on same-origin POSTs too; those need no CORS.
// The scheme is not compared: behind a TLS-terminating proxy the server
// cannot know it.
func sameOrigin(r *http.Request, origin string) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}
