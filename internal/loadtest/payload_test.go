package loadtest

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBuildPayload(t *testing.T) {
	t.Parallel()
	now := time.Now().UnixNano()
	for _, size := range []int{60, 64, 100, 128, 1000, 4096} {
		for _, seq := range []uint64{1, 9, 10, 12345, 999_999_999} {
			p := buildPayload([]byte("junk"), seq, now, size)
			p = p[len("junk"):]
			require.Len(t, p, size, "size=%d seq=%d", size, seq)
			var m struct {
				Seq uint64 `json:"seq"`
				T   int64  `json:"t"`
				Pad string `json:"pad"`
			}
			require.NoError(t, json.Unmarshal(p, &m), "%s", p)
			require.Equal(t, seq, m.Seq)
			require.Equal(t, now, m.T)
			require.Equal(t, strings.Repeat("x", len(m.Pad)), m.Pad)
		}
	}
	// Too small for the fields: the message goes out unpadded, still JSON.
	p := buildPayload(nil, 7, now, 1)
	require.True(t, json.Valid(p))
	require.Contains(t, string(p), `"pad":""`)
}

func TestParseDelivery(t *testing.T) {
	t.Parallel()
	now := time.Now().UnixNano()
	msg := buildPayload(nil, 42, now, 128)
	data := `{"id":"7","topic":"bench-0","message":` + string(msg) + `,"published_at":"2026-11-28T03:25:12.123456Z"}`
	seq, sent, err := parseDelivery(data)
	require.NoError(t, err)
	require.EqualValues(t, 42, seq)
	require.Equal(t, now, sent)

	// Another key order, or spacing, takes the slow path to the same answer.
	seq, sent, err = parseDelivery(`{"message": {"t": 5, "pad": "", "seq": 3}, "id": "1"}`)
	require.NoError(t, err)
	require.EqualValues(t, 3, seq)
	require.EqualValues(t, 5, sent)
	seq, sent, err = parseDelivery(`{"message":{"seq":8,"t":9}}`)
	require.NoError(t, err)
	require.EqualValues(t, 8, seq)
	require.EqualValues(t, 9, sent)

	for _, bad := range []string{``, `{`, `{"message":{"n":1}}`, `{"message":{"seq":1}}`, `{"message":{"seq":"x","t":1}}`, `{"id":"1"}`} {
		_, _, err := parseDelivery(bad)
		require.Error(t, err, "%q", bad)
	}
}

func TestParseLagged(t *testing.T) {
	t.Parallel()
	n, err := parseLagged(`{"missed":17,"topic":"bench-0"}`)
	require.NoError(t, err)
	require.EqualValues(t, 17, n)
	n, err = parseLagged(`{"missed": 3}`)
	require.NoError(t, err)
	require.EqualValues(t, 3, n)
	for _, bad := range []string{`{}`, `{"missed":x}`, `{"missed":1`} {
		_, err := parseLagged(bad)
		require.Error(t, err, "%q", bad)
	}
}
