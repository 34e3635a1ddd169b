package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/pubsub"
	"github.com/heraldhq/herald/internal/store"
)

// MaxKeysPerApp bounds an app's valid keys: rotation needs two or three at
// a time, and a bound keeps a runaway script from filling the store.
const MaxKeysPerApp = 100

// KeyStore is the part of store.Keys the key routes use.
type KeyStore interface {
	CreateKey(ctx context.Context, k store.Key) error
	ListKeys(ctx context.Context, appID string) ([]store.Key, error)
	RevokeKey(ctx context.Context, appID, keyID string) (store.Revocation, error)
}

// callerKey is the request context key of the verified app key that
// authorized a request (absent for the admin token and browser tokens).
type callerKey struct{}

// caller returns the app key that authorized r, if one did.
func caller(r *http.Request) (store.Key, bool) {
	k, ok := r.Context().Value(callerKey{}).(store.Key)
	return k, ok
}

type keyInfoJSON struct {
	ID         string        `json:"id"`
	Scopes     []store.Scope `json:"scopes"`
	CreatedAt  timestamp     `json:"created_at"`
	LastUsedAt *timestamp    `json:"last_used_at"`
}

type newKeyJSON struct {
	ID        string        `json:"id"`
	Key       string        `json:"key"`
	Scopes    []store.Scope `json:"scopes"`
	CreatedAt timestamp     `json:"created_at"`
}

func keyErr(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return &apiError{http.StatusNotFound, "key_not_found", "no such key in this app (or it was revoked already)"}
	}
	return err
}

func (a *API) listKeys(w http.ResponseWriter, r *http.Request) {
	if a.cfg.KeyStore == nil {
		a.notFound(w, r)
		return
	}
	keys, err := a.cfg.KeyStore.ListKeys(r.Context(), r.PathValue("app"))
	if err != nil {
		a.writeError(w, r, appErr(err))
		return
	}
	resp := make([]keyInfoJSON, 0, len(keys))
	for _, k := range keys {
		ki := keyInfoJSON{ID: k.ID, Scopes: k.Scopes, CreatedAt: timestamp(k.CreatedAt)}
		if !k.LastUsedAt.IsZero() {
			at := timestamp(k.LastUsedAt)
			ki.LastUsedAt = &at
		}
		if ki.Scopes == nil {
			ki.Scopes = []store.Scope{}
		}
		resp = append(resp, ki)
	}
	a.writeJSON(w, http.StatusOK, map[string]any{"keys": resp})
}

// parseScopes checks requested scopes: at least one, each known; duplicates
// are dropped and the order kept.
func parseScopes(in []store.Scope) ([]store.Scope, error) {
	if len(in) == 0 {
		return nil, fmt.Errorf(`%w: name at least one scope: {"scopes":["publish","subscribe"]}`, pubsub.ErrInvalid)
	}
	out := make([]store.Scope, 0, len(in))
	for _, sc := range in {
		switch sc {
		case store.ScopePublish, store.ScopeSubscribe, store.ScopeManage:
		default:
			return nil, fmt.Errorf("%w: unknown scope %q: the scopes are publish, subscribe and manage", pubsub.ErrInvalid, sc)
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out, nil
}

func (a *API) createKey(w http.ResponseWriter, r *http.Request) {
	if a.cfg.KeyStore == nil {
		a.notFound(w, r)
		return
	}
	var req struct {
		Scopes []store.Scope `json:"scopes"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	scopes, err := parseScopes(req.Scopes)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if k, ok := caller(r); ok {
		// A key may hand out no more than it holds; the admin token may
		// hand out anything.
		for _, sc := range scopes {
			if !auth.HasScope(k, sc) {
				a.writeError(w, r, fmt.Errorf("%w: this key may create keys with at most its own scopes (%v); %q is not one of them",
					auth.ErrForbidden, k.Scopes, sc))
				return
			}
		}
	}
	app := r.PathValue("app")
	existing, err := a.cfg.KeyStore.ListKeys(r.Context(), app)
	if err != nil {
		a.writeError(w, r, appErr(err))
		return
	}
	if len(existing) >= MaxKeysPerApp {
		a.writeError(w, r, &apiError{http.StatusConflict, "too_many_keys",
			fmt.Sprintf("an app has at most %d keys; revoke one first", MaxKeysPerApp)})
		return
	}
	k, full := auth.NewKey(app, scopes)
	k.CreatedAt = time.Now().UTC().Truncate(time.Microsecond)
	if err := a.cfg.KeyStore.CreateKey(r.Context(), k); err != nil {
		a.writeError(w, r, appErr(err))
		return
	}
	// The body holds the key, shown this once: no cache may keep it.
	w.Header().Set("Cache-Control", "no-store")
	a.writeJSON(w, http.StatusCreated, newKeyJSON{ID: k.ID, Key: full, Scopes: k.Scopes, CreatedAt: timestamp(k.CreatedAt)})
}

func (a *API) revokeKey(w http.ResponseWriter, r *http.Request) {
	if a.cfg.KeyStore == nil {
		a.notFound(w, r)
		return
	}
	id := r.PathValue("id")
	rev, err := a.cfg.KeyStore.RevokeKey(r.Context(), r.PathValue("app"), id)
	if err != nil {
		a.writeError(w, r, keyErr(err))
		return
	}
	// This node acts at once; the others hear it from the store's
	// revocation feed (auth.KeySync) and do the same.
	a.cfg.Keys.ForgetKey(rev.KeyID)
	a.cfg.Streams.EndKey(rev.KeyID)
	w.WriteHeader(http.StatusNoContent)
}
