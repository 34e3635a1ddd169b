package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/heraldhq/herald/internal/broadcast"
)

// WireEvent is one message carried inline in a notice, in JSON with short
// keys. Transports that carry messages inline share it, so every one
// encodes a message's body and time the same way.
type WireEvent struct {
	ID uint64 `json:"i"`
	// At is the commit time in Unix microseconds (what Postgres keeps).
	At   int64           `json:"p"`
	Body json.RawMessage `json:"b"`
}

// WireEventOf is ev's inline form.
func WireEventOf(id uint64, at time.Time, body json.RawMessage) WireEvent {
	return WireEvent{ID: id, At: at.UnixMicro(), Body: body}
}

// DecodeEvents decodes a JSON array of WireEvents into the events of (app,
// topic).
func DecodeEvents(app, topic string, raw json.RawMessage) ([]*broadcast.Event, error) {
	var msgs []WireEvent
	if err := json.Unmarshal(raw, &msgs); err != nil {
		return nil, fmt.Errorf("decode inline messages of %s/%s: %w", app, topic, err)
	}
	evs := make([]*broadcast.Event, len(msgs))
	for i, m := range msgs {
		evs[i] = &broadcast.Event{
			App: app, Topic: topic, ID: m.ID, Message: m.Body,
			PublishedAt: time.UnixMicro(m.At).UTC(),
		}
	}
	return evs, nil
}

// MarshalJSON encodes v as JSON without escaping <, > and &: message bodies
// travel inside notices, and subscribers on other nodes must get the very
// bytes that were stored (json.Marshal would rewrite them in RawMessages
// too).
func MarshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// HandOver gives r what a messages notice of (app, topic) carries: its
// inline events, or, when it carries none, a pointer to last, which r
// resolves from history. Inline events that cannot be decoded are handed
// over as the pointer too, since the range still exists in history; the
// error says what was wrong with them.
func HandOver(r Receiver, app, topic string, last uint64, inline json.RawMessage) error {
	if len(inline) == 0 {
		r.Pointer(app, topic, last)
		return nil
	}
	evs, err := DecodeEvents(app, topic, inline)
	if err != nil {
		r.Pointer(app, topic, last)
		return err
	}
	r.Messages(app, topic, evs)
	return nil
}
