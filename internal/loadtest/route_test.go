package loadtest

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNodeRoute(t *testing.T) {
	t.Parallel()
	r := nodeRoute{nodes: 3, topics: 2, publishNode: 0}
	// Subscribers 0 and 1 read topics 0 and 1 on node 0, 2 and 3 on node 1…
	var nodes []int
	for i := range 8 {
		nodes = append(nodes, r.subscriberNode(i))
	}
	require.Equal(t, []int{0, 0, 1, 1, 2, 2, 0, 0}, nodes)
	require.Equal(t, 0, r.publisherNode(5))
	require.False(t, r.crossNode(1, 5))
	require.True(t, r.crossNode(2, 5))

	all := nodeRoute{nodes: 3, topics: 1, publishNode: -1}
	require.Equal(t, 0, all.publisherNode(1))
	require.Equal(t, 1, all.publisherNode(2))
	require.Equal(t, 2, all.publisherNode(3))
	require.Equal(t, 0, all.publisherNode(4))
	require.False(t, all.crossNode(1, 2), "subscriber 1 is on node 1, where seq 2 was published")
	require.True(t, all.crossNode(1, 3))

	one := nodeRoute{nodes: 1, topics: 4, publishNode: 0}
	for i := range 10 {
		require.False(t, one.crossNode(i, uint64(i+1)), "one node: nothing crosses")
	}

	for _, tc := range []struct {
		in    string
		nodes int
		want  int
		valid bool
	}{{"0", 1, 0, true}, {"all", 1, -1, true}, {"2", 3, 2, true}, {"3", 3, 0, false}, {"-1", 3, 0, false}, {"", 2, 0, false}} {
		n, err := ParsePublishNode(tc.in, tc.nodes)
		if !tc.valid {
			require.Error(t, err, "%q of %d", tc.in, tc.nodes)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, tc.want, n)
	}
}

func TestSubscribersOn(t *testing.T) {
	t.Parallel()
	r := nodeRoute{nodes: 2, topics: 3}
	// Subscribers 0-2 (topics 0-2) on node 0, 3-5 on node 1, 6 (topic 0)
	// on node 0 again.
	perTopic, total := r.subscribersOn(0, 7)
	require.Equal(t, []int{2, 1, 1}, perTopic)
	require.Equal(t, 4, total)
	perTopic, total = r.subscribersOn(1, 7)
	require.Equal(t, []int{1, 1, 1}, perTopic)
	require.Equal(t, 3, total)
	perTopic, total = r.subscribersOn(1, 0)
	require.Equal(t, []int{0, 0, 0}, perTopic)
	require.Zero(t, total)
}
