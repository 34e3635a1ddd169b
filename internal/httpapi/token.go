package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/pubsub"
	"github.com/heraldhq/herald/internal/store"
)

// Browser token lifetimes: a token is meant to live about as long as a page
// view, and a stream opened with it ends when it expires.
const (
	DefaultTokenTTL = 15 * time.Minute
	MinTokenTTL     = time.Second
	MaxTokenTTL     = 24 * time.Hour
)

// browserTokenKey is the request context key of the verified browser token
// that authorized a stream request.
type browserTokenKey struct{}

func (a *API) verifyToken(token string) (auth.BrowserToken, error) {
	if a.cfg.Tokens == nil {
		return auth.BrowserToken{}, fmt.Errorf("%w: this server does not accept browser tokens", auth.ErrTokenInvalid)
	}
	return a.cfg.Tokens.Verify(token, time.Now())
}

type tokenJSON struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	Topics    []string  `json:"topics"`
}

// createToken mints a browser token for existing topics of the path's app.
func (a *API) createToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Topics []string `json:"topics"`
		TTL    string   `json:"ttl"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	ttl, err := parseTTL(req.TTL)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if len(req.Topics) == 0 {
		a.writeError(w, r, fmt.Errorf(`%w: name at least one topic: {"topics":["orders"]}`, pubsub.ErrInvalid))
		return
	}
	if len(req.Topics) > MaxTopicsPerStream {
		a.writeError(w, r, fmt.Errorf("%w: at most %d topics per token (a stream follows at most that many)", pubsub.ErrInvalid, MaxTopicsPerStream))
		return
	}
	for _, t := range req.Topics {
		if err := pubsub.ValidateTopic(t); err != nil {
			a.writeError(w, r, err)
			return
		}
	}
	app := r.PathValue("app")
	// One read for every topic, rather than one per topic.
	existing, err := a.cfg.Topics.ListTopics(r.Context(), app)
	if err != nil {
		a.writeError(w, r, appErr(err))
		return
	}
	known := make(map[string]bool, len(existing))
	for _, t := range existing {
		known[t.Name] = true
	}
	for _, t := range req.Topics {
		if !known[t] {
			a.writeError(w, r, topicErr(t, store.ErrNotFound))
			return
		}
	}
	if a.cfg.Tokens == nil {
		a.writeError(w, r, errors.New("browser tokens are not configured"))
		return
	}
	// The token names the key that minted it: revoking the key ends it.
	var keyID string
	if k, ok := caller(r); ok {
		keyID = k.ID
	}
	tok, bt, err := a.cfg.Tokens.MintForKey(keyID, app, req.Topics, ttl, time.Now())
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	// The body is a credential: no cache may keep it.
	w.Header().Set("Cache-Control", "no-store")
	a.writeJSON(w, http.StatusCreated, tokenJSON{Token: tok, ExpiresAt: bt.ExpiresAt, Topics: bt.Topics})
}

// parseTTL reads a token's ttl: empty means DefaultTokenTTL.
func parseTTL(s string) (time.Duration, error) {
	if s == "" {
		return DefaultTokenTTL, nil
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return 0, fmt.Errorf("%w: ttl %q is not a duration like \"15m\" or \"1h\"", pubsub.ErrInvalid, s)
	case d < MinTokenTTL:
		return 0, fmt.Errorf("%w: ttl %q is too short: at least %s", pubsub.ErrInvalid, s, MinTokenTTL)
	case d > MaxTokenTTL:
		return 0, fmt.Errorf("%w: ttl %q is too long: at most %s; mint a new token instead", pubsub.ErrInvalid, s, "24h")
	}
	return d, nil
}
