package sse

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/broadcast"
	"github.com/heraldhq/herald/internal/store"
)

// emptyHistory is a History of topics with no messages.
type emptyHistory struct{}

func (emptyHistory) GetTopic(_ context.Context, appID, name string) (store.Topic, error) {
	return store.Topic{AppID: appID, Name: name}, nil
}

func (emptyHistory) History(context.Context, string, string, uint64, int) ([]store.Message, error) {
	return nil, nil
}

// TestHTTP1StreamIsWrittenByItsWorker checks that a stream on a hijacked
// TCP connection is handed to a fan-out worker once its opening is written,
// and that what is published then reaches the client from there.
func TestHTTP1StreamIsWrittenByItsWorker(t *testing.T) {
	t.Parallel()
	mem, err := broadcast.NewMemory(broadcast.MemoryOptions{})
	require.NoError(t, err)
	h := New(mem, emptyHistory{}, Options{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h.Serve(w, r, Request{App: "app", Topics: []string{"t"}, KeyID: "k"}); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	}))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, h.Close(ctx))
		srv.Close()
	})
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	require.Equal(t, http.StatusOK, resp.StatusCode)

	direct := func() bool {
		h.adm.mu.Lock()
		defer h.adm.mu.Unlock()
		for s := range h.adm.keys["k"] {
			return s.fan != nil && s.direct.Load()
		}
		return false
	}
	// A hang guard, not a timing check: the stream goes direct as soon as
	// its goroutine has written the opening.
	require.Eventually(t, direct, 30*time.Second, time.Millisecond, "the stream is handed to its worker")

	mem.Publish(t.Context(), &broadcast.Event{App: "app", Topic: "t", ID: 1, Message: json.RawMessage(`{"n":1}`), PublishedAt: time.Now()})
	r := client.NewFrameReader(resp.Body)
	f, err := r.Next()
	require.NoError(t, err)
	require.Equal(t, "start", f.Type)
	f, err = r.Next()
	require.NoError(t, err)
	require.Equal(t, "1", f.ID)
	require.True(t, direct(), "a write the socket takes whole keeps the stream direct")
}
