package loadtest

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSeqSet(t *testing.T) {
	t.Parallel()
	var s seqSet
	require.False(t, s.Has(1))
	require.True(t, s.Add(1))
	require.False(t, s.Add(1), "second add is not new")
	require.True(t, s.Add(64))
	require.True(t, s.Add(10_000), "grows")
	require.True(t, s.Has(10_000))
	require.False(t, s.Has(9_999))
	require.False(t, s.Has(1<<40), "far beyond the end")
	require.EqualValues(t, 3, s.Len())

	var o seqSet
	o.Add(1)
	o.Add(2)
	o.Add(10_000)
	require.EqualValues(t, 2, s.IntersectLen(&o))
	require.EqualValues(t, 2, o.IntersectLen(&s))
	var empty seqSet
	require.Zero(t, empty.IntersectLen(&s))
}

func TestDeliveryTracker(t *testing.T) {
	t.Parallel()
	var tr deliveryTracker
	require.True(t, tr.Observe(2, 10), "seqs may arrive out of seq order: publishers race")
	require.True(t, tr.Observe(1, 11))
	require.False(t, tr.Observe(1, 12), "a duplicate seq")
	require.True(t, tr.Observe(3, 12), "an id that does not grow")
	require.True(t, tr.Observe(4, 5), "an id that goes back")
	require.EqualValues(t, 5, tr.messages)
	require.EqualValues(t, 1, tr.duplicates)
	require.EqualValues(t, 2, tr.outOfOrder)
	require.EqualValues(t, 4, tr.seen.Len())
	require.EqualValues(t, 12, tr.lastID)
}
