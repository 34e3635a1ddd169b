package client_test

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/client"
)

// The cases follow the event stream interpretation in the WHATWG HTML
// specification, section 9.2.6.
func TestFrameReaderFollowsTheSpec(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, stream string
		want         []client.Frame
		lastID       string
	}{
		{"LF", "data: a\n\n", []client.Frame{{Data: "a"}}, ""},
		{"CRLF", "data: a\r\n\r\n", []client.Frame{{Data: "a"}}, ""},
		{"CR", "data: a\r\rdata: b\r\r", []client.Frame{{Data: "a"}, {Data: "b"}}, ""},
		{"multi-line data", "data: a\ndata: b\n\n", []client.Frame{{Data: "a\nb"}}, ""},
		{"no space after colon", "data:a\n\n", []client.Frame{{Data: "a"}}, ""},
		{"only one space removed", "data:  a\n\n", []client.Frame{{Data: " a"}}, ""},
		{"comment ignored", ": ping\n\ndata: x\n\n", []client.Frame{{Data: "x"}}, ""},
		{"BOM skipped", "\ufeffdata: x\n\n", []client.Frame{{Data: "x"}}, ""},
		{"named event", "event: lagged\ndata: {}\n\n", []client.Frame{{Type: "lagged", Data: "{}"}}, ""},
		{"id kept across events", "id: 7\ndata: a\n\ndata: b\n\n", []client.Frame{{ID: "7", Data: "a"}, {ID: "7", Data: "b"}}, "7"},
		{"id without data sets last id", "id: 9\n\n", nil, "9"},
		{"id with NUL ignored", "id: 1\x002\ndata: a\n\n", []client.Frame{{Data: "a"}}, ""},
		{"retry", "retry: 2000\ndata: a\n\n", []client.Frame{{Data: "a", Retry: 2000}}, ""},
		{"bad retry ignored", "retry: 2s\ndata: a\n\n", []client.Frame{{Data: "a"}}, ""},
		{"unknown field ignored", "foo: bar\ndata: a\n\n", []client.Frame{{Data: "a"}}, ""},
		{"field without colon", "data\n\n", []client.Frame{{Data: ""}}, ""},
		{"unterminated event dropped", "data: a\n\ndata: b", []client.Frame{{Data: "a"}}, ""},
		{"U+2028 is not a line break", "data: a\u2028b\n\n", []client.Frame{{Data: "a\u2028b"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := client.NewFrameReader(strings.NewReader(tc.stream))
			var got []client.Frame
			for {
				f, err := r.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				require.NoError(t, err)
				got = append(got, f)
			}
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.lastID, r.LastEventID())
		})
	}
}
