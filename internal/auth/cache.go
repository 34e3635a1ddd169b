package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/heraldhq/herald/internal/store"
)

// DefaultCacheTTL is how long a verified key is trusted without a store read
// when NewVerifier gets a ttl of 0. A revoked key does not live that long:
// KeySync drops it from every node's cache within its poll interval.
const DefaultCacheTTL = 10 * time.Second

// maxCached bounds each of the cache's maps; when one is full it starts over.
const maxCached = 10_000

// Verifier verifies presented keys and remembers the ones that verified for
// a short time, so that a busy publisher or a reconnect storm does not cost
// a store read per request. Failures are never cached. It also notes when
// each key was last used, to the minute, for KeySync to write. It is safe
// for concurrent use.
type Verifier struct {
	keys KeyGetter
	ttl  time.Duration

	mu sync.Mutex
	// entries caches verified keys by hash of the presented key.
	entries map[[sha256.Size]byte]cachedKey // guarded by mu
	// valid caches, by key id, until when KeyValid trusts that a key was
	// not revoked.
	valid map[string]time.Time // guarded by mu
	// gen counts ForgetKey and Forget calls: a store read that began
	// before one must not put back what it dropped.
	gen uint64 // guarded by mu
	// used holds the minute each key was last used, for TakeUsed; written
	// the minute last handed out, so that each minute is written once.
	used, written map[string]time.Time // guarded by mu
}

type cachedKey struct {
	key     store.Key
	expires time.Time
}

// NewVerifier returns a Verifier reading keys through keys. ttl is how long
// a verified key is remembered: 0 means DefaultCacheTTL, negative disables
// the cache. A deleted or revoked key stays usable for at most ttl on a
// node that did not delete it unless something calls ForgetKey (KeySync
// does, within a second).
func NewVerifier(keys KeyGetter, ttl time.Duration) *Verifier {
	if ttl == 0 {
		ttl = DefaultCacheTTL
	}
	return &Verifier{
		keys: keys, ttl: ttl,
		entries: make(map[[sha256.Size]byte]cachedKey), valid: make(map[string]time.Time),
		used: make(map[string]time.Time), written: make(map[string]time.Time),
	}
}

// Verify is the cached form of the package's Verify.
func (v *Verifier) Verify(ctx context.Context, presented string) (store.Key, error) {
	now := time.Now()
	if v.ttl < 0 {
		k, err := Verify(ctx, v.keys, presented)
		if err == nil {
			v.mu.Lock()
			v.markUsedLocked(k.ID, now)
			v.mu.Unlock()
		}
		return k, err
	}
	h := sha256.Sum256([]byte(presented))
	v.mu.Lock()
	e, ok := v.entries[h]
	if ok && now.Before(e.expires) {
		v.markUsedLocked(e.key.ID, now)
		v.mu.Unlock()
		return e.key, nil
	}
	gen := v.gen
	v.mu.Unlock()

	k, err := Verify(ctx, v.keys, presented)
	if err != nil {
		return store.Key{}, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.markUsedLocked(k.ID, now)
	if v.gen != gen {
		// A revocation was heard during the read: the key may be one it
		// dropped, and is not cached (this request, racing it, passes).
		return k, nil
	}
	if len(v.entries) >= maxCached {
		v.entries = make(map[[sha256.Size]byte]cachedKey)
	}
	v.entries[h] = cachedKey{key: k, expires: now.Add(v.ttl)}
	return k, nil
}

// markUsedLocked notes that key id was used at now. v.mu must be held.
func (v *Verifier) markUsedLocked(id string, now time.Time) {
	minute := now.UTC().Truncate(time.Minute)
	if v.written[id].Equal(minute) || v.used[id].Equal(minute) {
		return
	}
	if len(v.used) >= maxCached {
		return // a flood of keys between two flushes: the next minute catches up
	}
	v.used[id] = minute
}

// TakeUsed returns the keys used since the last call, each with the minute
// it was last used, and forgets them. A key used within one minute is
// returned once for that minute.
func (v *Verifier) TakeUsed() map[string]time.Time {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.used) == 0 {
		return nil
	}
	out := v.used
	v.used = make(map[string]time.Time)
	if len(v.written)+len(out) > maxCached {
		v.written = make(map[string]time.Time)
	}
	for id, at := range out {
		v.written[id] = at
	}
	return out
}

// ErrKeyRevoked means a browser token was minted with a key that has since
// been revoked (or its app deleted). It wraps ErrTokenInvalid.
var ErrKeyRevoked = fmt.Errorf("%w: the key that minted it was revoked", ErrTokenInvalid)

// KeyValid reports whether the key with this id still exists (was not
// revoked): nil, ErrKeyRevoked, or a store error. An empty id (a token the
// admin token minted) is valid. Answers are cached like Verify's.
func (v *Verifier) KeyValid(ctx context.Context, keyID string) error {
	if keyID == "" {
		return nil
	}
	now := time.Now()
	v.mu.Lock()
	until, ok := v.valid[keyID]
	gen := v.gen
	v.mu.Unlock()
	if ok && now.Before(until) {
		return nil
	}
	_, err := v.keys.GetKey(ctx, keyID)
	if errors.Is(err, store.ErrNotFound) {
		return ErrKeyRevoked
	}
	if err != nil {
		return fmt.Errorf("look up key: %w", err)
	}
	if v.ttl < 0 {
		return nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.gen == gen {
		if len(v.valid) >= maxCached {
			v.valid = make(map[string]time.Time)
		}
		v.valid[keyID] = now.Add(v.ttl)
	}
	return nil
}

// ForgetKey drops a key from the cache, as when it is revoked: the next
// request with it reads the store and is refused.
func (v *Verifier) ForgetKey(keyID string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.gen++
	delete(v.valid, keyID)
	for h, e := range v.entries {
		if e.key.ID == keyID {
			delete(v.entries, h)
		}
	}
}

// Forget drops every cached key of an app, as when it is deleted.
func (v *Verifier) Forget(appID string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.gen++
	for h, e := range v.entries {
		if e.key.AppID == appID {
			delete(v.entries, h)
			delete(v.valid, e.key.ID)
		}
	}
}
