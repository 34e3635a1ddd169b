package postgres_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/postgres"
)

// TestTopicHeads: one read gives each existing topic's last id and
// creation time, as GetTopic does, and leaves out what does not exist.
func TestTopicHeads(t *testing.T) {
	t.Parallel()
	st := openStore(t, pgtest.NewDatabase(t), postgres.Options{})
	for _, app := range []string{"a", "b"} {
		require.NoError(t, st.CreateApp(t.Context(), store.App{ID: app, Name: app}, nil))
		_, _, err := st.CreateTopic(t.Context(), app, "t.1")
		require.NoError(t, err)
	}
	for range 3 {
		_, err := st.Publish(t.Context(), store.PublishRequest{AppID: "b", Topic: "t.1", Body: []byte(`1`)})
		require.NoError(t, err)
	}
	heads, err := st.TopicHeads(t.Context(), []string{"a", "b", "a", "c", "a\x00"}, []string{"t.1", "t.1", "missing", "t.1", "t.1"})
	require.NoError(t, err)
	require.Len(t, heads, 2)
	for _, h := range heads {
		want, err := st.GetTopic(t.Context(), h.AppID, h.Name)
		require.NoError(t, err)
		require.Equal(t, want, h)
	}
	_, err = st.TopicHeads(t.Context(), []string{"a"}, nil)
	require.Error(t, err)
	heads, err = st.TopicHeads(t.Context(), nil, nil)
	require.NoError(t, err)
	require.Empty(t, heads)
}
