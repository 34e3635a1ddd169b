package heraldtest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// Hit is one request a Receiver got.
type Hit struct {
	Header http.Header
	Body   []byte
	At     time.Time
}

// Receiver is a real webhook receiver: an HTTP server on 127.0.0.1 (which
// Config allows webhooks to reach) that records every request and answers
// with its handler, or 204 when the handler is nil. It closes when the test
// ends, cutting off requests its handler still holds.
type Receiver struct {
	*httptest.Server
	// Hits gets each request as it arrives (up to 100,000 unread).
	Hits chan Hit
}

// NewReceiver starts a receiver.
func NewReceiver(tb testing.TB, handle http.HandlerFunc) *Receiver {
	tb.Helper()
	r := &Receiver{Hits: make(chan Hit, 100_000)}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.Hits <- Hit{Header: req.Header.Clone(), Body: body, At: time.Now()}
		if handle == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		handle(w, req)
	}))
	tb.Cleanup(func() {
		r.CloseClientConnections()
		r.Close()
	})
	return r
}

// Next waits up to 15 seconds for the receiver's next request.
func (r *Receiver) Next(tb testing.TB) Hit {
	tb.Helper()
	select {
	case h := <-r.Hits:
		return h
	case <-time.After(15 * time.Second):
		tb.Fatal("the webhook receiver got no request within 15s")
		return Hit{}
	}
}
