package loadtest

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseReadyLine(t *testing.T) {
	t.Parallel()
	addr, ok := parseReadyLine([]byte(`{"time":"2026-11-28T03:25:12Z","level":"INFO","msg":"herald ready","addr":"http://127.0.0.1:41234","store":"sqlite"}`))
	require.True(t, ok)
	require.Equal(t, "http://127.0.0.1:41234", addr)
	for _, line := range []string{`{"msg":"starting"}`, `{"msg":"herald ready"}`, `time=x msg="herald ready"`, ``} {
		_, ok := parseReadyLine([]byte(line))
		require.False(t, ok, "%q", line)
	}
}

func TestReadyWatcher(t *testing.T) {
	t.Parallel()
	w := newReadyWatcher()
	log := `{"msg":"opening store"}` + "\n" + `{"msg":"herald ready","addr":"http://127.0.0.1:9"}` + "\n" + `{"msg":"tail"`
	// Written in pieces that split lines, as a pipe may.
	for chunk := range slicesChunk([]byte(log), 7) {
		n, err := w.Write(chunk)
		require.NoError(t, err)
		require.Equal(t, len(chunk), n)
	}
	select {
	case <-w.ready:
	default:
		t.Fatal("ready not signalled")
	}
	require.Equal(t, "http://127.0.0.1:9", w.Addr())
	require.Contains(t, w.Tail(), "opening store")
	require.True(t, strings.HasSuffix(w.Tail(), `{"msg":"tail"`))
	_, err := w.Write([]byte(`{"msg":"herald ready","addr":"http://other"}` + "\n"))
	require.NoError(t, err, "a second ready line is harmless")
	require.Equal(t, "http://127.0.0.1:9", w.Addr())
}

// slicesChunk yields b in pieces of n bytes.
func slicesChunk(b []byte, n int) func(func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for len(b) > 0 {
			k := min(n, len(b))
			if !yield(b[:k]) {
				return
			}
			b = b[k:]
		}
	}
}
