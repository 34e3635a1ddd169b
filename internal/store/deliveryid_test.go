package store_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/store"
)

func TestNewDeliveryID(t *testing.T) {
	t.Parallel()
	shape := regexp.MustCompile(`^msg_[0-9A-HJKMNP-TV-Z]{26}$`)
	seen := make(map[string]bool)
	prev := ""
	for i := range 10_000 {
		id := store.NewDeliveryID()
		require.Regexp(t, shape, id)
		require.False(t, seen[id], "id %s twice", id)
		seen[id] = true
		// The time part never goes back.
		require.GreaterOrEqual(t, id[:14], prev[:min(len(prev), 14)], "id %d", i)
		prev = id
	}
	// The time part is the time the id was made, in milliseconds.
	before := time.Now().UnixMilli()
	id := store.NewDeliveryID()
	after := time.Now().UnixMilli()
	var ms int64
	for _, c := range id[4:14] {
		ms = ms<<5 | int64(strings.IndexRune("0123456789ABCDEFGHJKMNPQRSTVWXYZ", c))
	}
	require.GreaterOrEqual(t, ms, before)
	require.LessOrEqual(t, ms, after)
}
