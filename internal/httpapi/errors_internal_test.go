package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/store"
)

// TestWriteErrorGivesClientsSomethingToActOn maps the failures a client
// can do something about to their status, code and Retry-After.
func TestWriteErrorGivesClientsSomethingToActOn(t *testing.T) {
	t.Parallel()
	a := New(Config{})
	for _, tc := range []struct {
		err        error
		status     int
		code       string
		retryAfter string
	}{
		{fmt.Errorf("publish: %w: dial tcp: refused", store.ErrUnavailable), 503, "unavailable", "1"},
		{fmt.Errorf("publish: %w", store.ErrFull), 503, "unavailable", "30"},
		{fmt.Errorf("publish: %w: %w", store.ErrCommitUnknown, io.ErrUnexpectedEOF), 503, "commit_unknown", "1"},
		{&bodyReadError{err: os.ErrDeadlineExceeded, timeout: DefaultReadTimeout}, 408, "request_timeout", ""},
		{&bodyReadError{err: io.ErrUnexpectedEOF}, 400, "body_unreadable", ""},
		{errors.New("something else"), 500, "internal", ""},
	} {
		rec := httptest.NewRecorder()
		a.writeError(rec, httptest.NewRequest(http.MethodPost, "/v1/apps/a/topics/t/messages", nil), tc.err)
		require.Equal(t, tc.status, rec.Code, "%v", tc.err)
		var body struct {
			Error struct{ Code, Message string }
		}
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
		require.Equal(t, tc.code, body.Error.Code, "%v", tc.err)
		require.Equal(t, tc.retryAfter, rec.Header().Get("Retry-After"), "%v", tc.err)
		require.NotContains(t, body.Error.Message, "dial tcp", "driver details stay in the log")
	}
}
