package auth

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/heraldhq/herald/internal/store"
)

// DefaultCacheTTL is how long a verified key is trusted without a store read
// when NewVerifier gets a ttl of 0.
const DefaultCacheTTL = 10 * time.Second

// maxCached bounds the cache; when it is full it starts over.
const maxCached = 10_000

// Verifier verifies presented keys and remembers the ones that verified for
// a short time, so that a busy publisher or a reconnect storm does not cost
// a store read per request. Failures are never cached. It is safe for
// concurrent use.
type Verifier struct {
	keys KeyGetter
	ttl  time.Duration

	mu      sync.Mutex
	entries map[[sha256.Size]byte]cachedKey // guarded by mu; by hash of the presented key
}

type cachedKey struct {
	key     store.Key
	expires time.Time
}

// NewVerifier returns a Verifier reading keys through keys. ttl is how long
// a verified key is remembered: 0 means DefaultCacheTTL, negative disables
// the cache. A deleted key stays usable for at most ttl on a node that did
// not delete it (Forget ends it at once on the node that did).
func NewVerifier(keys KeyGetter, ttl time.Duration) *Verifier {
	if ttl == 0 {
		ttl = DefaultCacheTTL
	}
	return &Verifier{keys: keys, ttl: ttl, entries: make(map[[sha256.Size]byte]cachedKey)}
}

// Verify is the cached form of the package's Verify.
func (v *Verifier) Verify(ctx context.Context, presented string) (store.Key, error) {
	if v.ttl < 0 {
		return Verify(ctx, v.keys, presented)
	}
	h := sha256.Sum256([]byte(presented))
	now := time.Now()
	v.mu.Lock()
	e, ok := v.entries[h]
	v.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.key, nil
	}
	k, err := Verify(ctx, v.keys, presented)
	if err != nil {
		return store.Key{}, err
	}
	v.mu.Lock()
	if len(v.entries) >= maxCached {
		v.entries = make(map[[sha256.Size]byte]cachedKey)
	}
	v.entries[h] = cachedKey{key: k, expires: now.Add(v.ttl)}
	v.mu.Unlock()
	return k, nil
}

// Forget drops every cached key of an app, as when it is deleted.
func (v *Verifier) Forget(appID string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for h, e := range v.entries {
		if e.key.AppID == appID {
			delete(v.entries, h)
		}
	}
}
