package httpapi

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/store"
)

// TestAppendPublishedIsWhatEncodingJSONWrites checks the hand-built
// publish answer against encoding/json's encoding of the types it stands
// for, byte for byte: single, and a batch item stored or replayed.
func TestAppendPublishedIsWhatEncodingJSONWrites(t *testing.T) {
	t.Parallel()
	// batchResult is how a batch's item was encoded before it was built by
	// hand.
	type batchResult struct {
		messageJSON
		Replayed bool `json:"replayed,omitempty"`
	}
	encode := func(v any) []byte {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		require.NoError(t, enc.Encode(v))
		return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	}
	berlin := time.FixedZone("CET", 3600)
	for _, m := range []store.Message{
		{ID: 1, Topic: "orders", PublishedAt: time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)},
		{ID: 18446744073709551615, Topic: "a.b_c-D9", PublishedAt: time.Date(2026, 1, 2, 3, 4, 5, 123456789, berlin)},
		// Topics are validated before they are stored; the answer is
		// valid JSON all the same.
		{ID: 7, Topic: "q\"u\\o<t>e&\u2028\x01é", PublishedAt: time.Unix(0, 0)},
	} {
		require.Equal(t, string(encode(publishedJSON(m))), string(appendPublished(nil, m, false)))
		for _, replayed := range []bool{false, true} {
			require.Equal(t, string(encode(batchResult{publishedJSON(m), replayed})), string(appendPublished(nil, m, replayed)))
		}
	}
}
