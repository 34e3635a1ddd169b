package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMaxConnectionsLeavesHeadroomBelowTheOpenFileLimit(t *testing.T) {
	t.Parallel()
	for limit, want := range map[uint64]int{
		256:     192,   // 64 kept for the store and webhooks
		1024:    922,   // a tenth kept
		20000:   18000, // a tenth kept
		100:     50,    // a tiny limit is shared evenly
		1:       1,
		1 << 40: 943719, // "unlimited" is taken as 2^20
	} {
		got := maxConnectionsFor(limit)
		require.Equal(t, want, got, "limit %d", limit)
		require.Less(t, uint64(got), max(limit, 2), "limit %d", limit)
	}
}
