package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReadBatch: NDJSON lines become batch messages with their line
// numbers; blank lines are skipped; a bad line is named.
func TestReadBatch(t *testing.T) {
	t.Parallel()
	msgs, lines, err := readBatch(strings.NewReader(
		"{\"topic\":\"a\",\"message\":{\"n\":1}}\n\n  \n{\"topic\":\"b\",\"message\":null,\"idempotency_key\":\"k\"}\r\n{\"topic\":\"a\",\"message\":\"é\"}"))
	require.NoError(t, err)
	require.Equal(t, []int{1, 4, 5}, lines)
	require.Len(t, msgs, 3)
	require.Equal(t, "b", msgs[1].Topic)
	require.Equal(t, "null", string(msgs[1].Message))
	require.Equal(t, "k", msgs[1].IdempotencyKey)
	require.Equal(t, `"é"`, string(msgs[2].Message))

	for input, want := range map[string]string{
		"{\"topic\":\"a\",\"message\":1}\n{\"topic\":\"a\",\"message\":": "line 2",
		"{\"topic\":\"a\"}": "line 1",
		"{\"message\":1}":   "line 1",
		"{\"topic\":\"a\",\"message\":1,\"extra\":true}": "line 1",
		"[1]": "line 1",
	} {
		_, _, err := readBatch(strings.NewReader(input))
		require.ErrorContains(t, err, want, input)
	}
	msgs, _, err = readBatch(strings.NewReader("\n\n"))
	require.NoError(t, err)
	require.Empty(t, msgs)
}
