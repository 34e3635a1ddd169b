package sqlstore_test

import (
	"cmp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/groupcommit"
	"github.com/heraldhq/herald/internal/store/sqlstore"
)

// calls returns single-publish calls to the topics named, of app "a".
func calls(topics ...string) []*groupcommit.Call {
	out := make([]*groupcommit.Call, 0, len(topics))
	for _, topic := range topics {
		out = append(out, &groupcommit.Call{Req: store.PublishRequest{AppID: "a", Topic: topic}})
	}
	return out
}

// topicsOf returns the topic of each group, in order.
func topicsOf(gs *sqlstore.Groups) []string {
	var out []string
	for _, g := range gs.List {
		out = append(out, g.Key.Topic)
	}
	return out
}

func TestGroupsAssign(t *testing.T) {
	t.Parallel()
	var gs sqlstore.Groups

	live := calls("c", "a", "c", "b")
	gs.Assign(live, nil)
	require.Equal(t, []string{"c", "a", "b"}, topicsOf(&gs), "order of first call")
	for _, c := range live {
		require.Equal(t, c.Req.Topic, gs.List[c.Group].Key.Topic)
	}

	// Reused: nothing of the last batch is left, and a cmp sorts.
	gs.List[0].Missing, gs.List[0].Triggers = true, []string{"tr"}
	live = calls("z", "y", "z")
	gs.Assign(live, func(a, b sqlstore.TopicKey) int { return cmp.Compare(a.Topic, b.Topic) })
	require.Equal(t, []string{"y", "z"}, topicsOf(&gs), "sorted")
	require.Equal(t, []int{1, 0, 1}, []int{live[0].Group, live[1].Group, live[2].Group})
	for _, g := range gs.List {
		require.False(t, g.Missing)
		require.Empty(t, g.Triggers)
	}
}

func TestTakeGivesIDsInOrderAndNeverANilBody(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	g := sqlstore.Group{Key: sqlstore.TopicKey{App: "a", Topic: "t"}, Next: 7, PublishedAt: at}
	first, second := calls("t", "t")[0], calls("t")[0]
	second.Req.Body = []byte(`{}`)

	body := g.Take(first)
	require.NotNil(t, body, "NULL would break NOT NULL")
	require.Empty(t, body)
	require.Equal(t, store.Message{AppID: "a", Topic: "t", ID: 7, PublishedAt: at}, first.Msg)
	require.Equal(t, []byte(`{}`), g.Take(second))
	require.Equal(t, uint64(8), second.Msg.ID)
	require.Equal(t, uint64(9), g.Next)
}

func TestFailMissingAndHandOver(t *testing.T) {
	t.Parallel()
	var gs sqlstore.Groups
	live := calls("here", "gone", "here")
	var committed []uint64
	for _, c := range live {
		c.Req.CommittedFunc = func(m store.Message) { committed = append(committed, m.ID) }
	}
	gs.Assign(live, nil)
	gs.List[1].Missing = true
	gs.List[0].Next = 1

	require.False(t, gs.FailMissing(live), "single publishes fail alone")
	require.ErrorIs(t, live[1].Err, store.ErrNotFound)
	require.Contains(t, live[1].Err.Error(), `"gone"`)
	gs.List[0].Take(live[0])
	gs.List[0].Take(live[2])
	sqlstore.HandOver(live)
	require.Equal(t, []uint64{1, 2}, committed, "only stored messages, in batch order")
}

func TestReplay(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c := calls("t")[0]
	require.NoError(t, sqlstore.Replay(c, "t", 5, []byte(`x`), at))
	require.True(t, c.Replay)
	require.Equal(t, store.Message{AppID: "a", Topic: "t", ID: 5, Body: []byte(`x`), PublishedAt: at}, c.Msg)

	c = calls("t")[0]
	err := sqlstore.Replay(c, "other", 5, nil, at)
	require.ErrorIs(t, err, store.ErrConflict)
	require.False(t, c.Replay)
}
