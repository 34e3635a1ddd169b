package event

import (
	"encoding/json"
	"sync"
	"time"
)

// Event is one published message on its way to subscribers and webhook
// receivers. Events are shared by every subscriber of a topic and must not be
// modified once published.
type Event struct {
	// App is the id of the app that owns the topic.
	App string
	// Topic is the topic name.
	Topic string
	// ID is the message id: strictly increasing per topic, assigned by the store.
	ID uint64
	// Message is the published JSON value in compact form (no newlines).
	Message json.RawMessage
	// PublishedAt is when the store committed the message.
	PublishedAt time.Time

	frameOnce sync.Once
	frame     []byte
}

// Frame returns the event's wire encoding, computed by encode on the first
// call; every later call, from any goroutine, returns the same bytes without
// calling encode. All callers must pass the same encoder (the SSE handler
// passes EncodeFrame): this is how an event is encoded once however many
// subscribers receive it.
func (e *Event) Frame(encode func(*Event) []byte) []byte {
	e.frameOnce.Do(func() { e.frame = encode(e) })
	return e.frame
}
