package sse

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzCursor feeds arbitrary Last-Event-IDs to the cursor parser of a
// stream of arbitrary topics. It never panics; what it refuses is
// errBadCursor; what it takes names only positions it was given (each a
// decimal id); and the cursor a stream writes for positions parses back to
// exactly them, so a reconnect resumes every topic where it was.
func FuzzCursor(f *testing.F) {
	for _, seed := range []struct{ id, topics string }{
		{"", "a"}, {"42", "a"}, {"a:1,b:2", "a,b"}, {"a:1", "a,b"}, {"c:9", "a,b"},
		{"18446744073709551615", "a"}, {"18446744073709551616", "a"}, {"-1", "a"}, {"a:", "a,b"},
		{":1", "a"}, {"a:1,,b:2", "a,b"}, {"a:1:2", "a,b"}, {"+1", "a"}, {"0x10", "a"}, {"a:01", "a,b"},
		{strings.Repeat("a:1,", 100), "a,b"}, {"１", "a"},
	} {
		f.Add(seed.id, seed.topics)
	}
	f.Fuzz(func(t *testing.T, id, topicList string) {
		var topics []string
		for tp := range strings.SplitSeq(topicList, ",") {
			// Topic names as ValidateTopic admits them never hold : or ,.
			if tp != "" && !strings.ContainsAny(tp, ":,") {
				topics = append(topics, tp)
			}
		}
		slices.Sort(topics)
		topics = slices.Compact(topics)
		if len(topics) == 0 {
			return
		}
		pos, err := parseCursor(id, topics)
		if err != nil {
			require.True(t, errors.Is(err, errBadCursor), "%v", err)
			return
		}
		if id == "" {
			require.Empty(t, pos)
		}
		for name := range pos {
			require.True(t, strings.Contains(id, name) || (len(topics) == 1 && name == topics[0]), "position for %q out of nowhere", name)
		}

		// What a stream writes parses back to the same positions.
		want := make([]uint64, len(topics))
		for i, tp := range topics {
			want[i] = pos[tp]
		}
		written := appendCursor(nil, topics, want)
		back, err := parseCursor(string(written), topics)
		require.NoError(t, err, "%q", written)
		for i, tp := range topics {
			require.Equal(t, want[i], back[tp], "topic %q of %q", tp, written)
		}
	})
}
