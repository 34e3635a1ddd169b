package httpapi_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkPublishHandler measures one publish through the API's handler
// (auth, body, validation, the store's commit, the broadcast, the answer)
// without net/http's connection: run with -benchmem for the allocations a
// publish costs the API. BenchmarkPublishHTTP in internal/server measures
// the whole path over loopback.
func BenchmarkPublishHandler(b *testing.B) {
	tb := setup(b, apiOptions{})
	body := []byte(`{"order":42,"customer":"c-1234567","total":12.5,"currency":"EUR","items":[{"sku":"A-1","qty":2}],"note":"xxxxxxxxxxxxxxxxxxx"}`)
	path := "/v1/apps/" + tb.app + "/topics/" + testTopic + "/messages"
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequestWithContext(b.Context(), http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tb.full)
		req.Header.Set("Content-Type", "application/json")
		rec := deadlineRecorder{httptest.NewRecorder()}
		tb.api.ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}

// deadlineRecorder is a recorder whose read deadline can be set, as a
// connection's can: without it every deadline the API sets would cost
// net/http's "not supported" error, which a real server never pays.
type deadlineRecorder struct{ *httptest.ResponseRecorder }

func (deadlineRecorder) SetReadDeadline(time.Time) error { return nil }
