package sse

import (
	"encoding/json"
)

// keyWatch is the streams opened with each key, so that revoking the key
// ends them. Each stream holds a channel that EndKey closes.
type keyWatch map[string]map[chan struct{}]struct{}

// watchKey registers a stream opened with keyID and returns the channel
// that closes when the key is revoked, and the function that unregisters
// it. An empty keyID (the admin token) gives a nil channel, which never
// closes.
func (h *Handler) watchKey(keyID string) (<-chan struct{}, func()) {
	if keyID == "" {
		return nil, func() {}
	}
	ch := make(chan struct{})
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.keys == nil {
		h.keys = make(keyWatch)
	}
	if h.keys[keyID] == nil {
		h.keys[keyID] = make(map[chan struct{}]struct{})
	}
	h.keys[keyID][ch] = struct{}{}
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if set, ok := h.keys[keyID]; ok {
			delete(set, ch)
			if len(set) == 0 {
				delete(h.keys, keyID)
			}
		}
	}
}

// EndKey ends every stream on this node opened with the key keyID, or with
// a browser token it minted: each gets "event: key_revoked" and ends. It
// returns how many it ended. Calling it again for the same key is harmless.
func (h *Handler) EndKey(keyID string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.keys[keyID]
	delete(h.keys, keyID)
	for ch := range set {
		close(ch) // once: the set was removed from the map under the same lock
	}
	return len(set)
}

// endRevoked tells the client that the key its stream was opened with was
// revoked. A client should not reconnect with it: it would get 401.
func (s *stream) endRevoked() {
	id, _ := json.Marshal(s.keyID) // a string always encodes
	s.buf = append(s.buf, "event: key_revoked\ndata: {\"key\":"...)
	s.buf = append(s.buf, id...)
	s.buf = append(s.buf, "}\n\n"...)
	s.flush()
}
