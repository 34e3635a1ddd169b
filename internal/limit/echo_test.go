package limit_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/limit"
)

func TestEchoCutsLongInputOnARuneBoundary(t *testing.T) {
	t.Parallel()
	require.Equal(t, "short", limit.Echo("short"))
	long := strings.Repeat("x", 300<<10)
	require.Equal(t, strings.Repeat("x", limit.MaxEcho)+"…", limit.Echo(long))
	runes := strings.Repeat("é", 100) // 2 bytes each: byte 64 starts a rune
	got := limit.Echo("x" + runes)    // now byte 64 is inside one
	require.True(t, utf8.ValidString(got))
	require.LessOrEqual(t, len(got), limit.MaxEcho+len("…"))
}
