package sse

import (
	"context"

	"github.com/heraldhq/herald/internal/event"
)

// watchKey registers s under the key that opened it, so that revoking the
// key ends it. A stream without a key (the admin token) is not registered.
func (a *admission) watchKey(s *stream) {
	if s.keyID == "" {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.keys == nil {
		a.keys = make(map[string]map[*stream]struct{})
	}
	if a.keys[s.keyID] == nil {
		a.keys[s.keyID] = make(map[*stream]struct{})
	}
	a.keys[s.keyID][s] = struct{}{}
}

// unwatchKey undoes watchKey. It is harmless after EndKey.
func (a *admission) unwatchKey(s *stream) {
	if s.keyID == "" {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if set, ok := a.keys[s.keyID]; ok {
		delete(set, s)
		if len(set) == 0 {
			delete(a.keys, s.keyID)
		}
	}
}

// EndKey ends every stream on this node opened with the key keyID, or with
// a browser token it minted: each gets "event: key_revoked" and ends. It
// returns how many it ended. Calling it again for the same key is harmless.
func (h *Handler) EndKey(keyID string) int {
	h.adm.mu.Lock()
	defer h.adm.mu.Unlock()
	set := h.adm.keys[keyID]
	delete(h.adm.keys, keyID)
	for s := range set {
		s.revoked.Store(true)
		s.notify()
	}
	return len(set)
}

// checkKey asks valid, if not nil, whether the stream's key is still valid,
// once the stream is registered under it: a revocation between the
// request's authentication and the registration would otherwise miss it.
func (s *stream) checkKey(valid func(ctx context.Context) error) error {
	if valid == nil {
		return nil
	}
	return valid(s.ctx) // the caller's own error, which Serve returns as it is
}

// endRevoked tells the client that the key its stream was opened with was
// revoked. A client should not reconnect with it: it would get 401.
func (s *stream) endRevoked() {
	s.buf = event.AppendKeyRevoked(s.buf, s.keyID)
	s.flush()
}
