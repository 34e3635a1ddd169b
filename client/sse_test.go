package client_test

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

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
		{"lines longer than the read buffer", "id: " + strings.Repeat("7", 5000) + "\r\ndata: " + strings.Repeat("x", 9000) + "\r\n\r\n",
			[]client.Frame{{ID: strings.Repeat("7", 5000), Data: strings.Repeat("x", 9000)}}, strings.Repeat("7", 5000)},
		{"CR then LF: one line end, not two", "data: a\r\ndata: b\r\n\r\n", []client.Frame{{Data: "a\nb"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Whole, and a byte per read: a line, or a CRLF, split
			// between reads parses the same.
			for _, src := range []io.Reader{strings.NewReader(tc.stream), iotest.OneByteReader(strings.NewReader(tc.stream))} {
				r := client.NewFrameReader(src)
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
			}
		})
	}
}

// BenchmarkFrameReader reads the frames a bench subscriber gets: an id and
// one data line of about 200 bytes each.
func BenchmarkFrameReader(b *testing.B) {
	frame := "id: 123456\ndata: {\"id\":\"123456\",\"topic\":\"bench-0\",\"message\":{\"seq\":42,\"t\":1764892800000000000,\"pad\":\"" +
		strings.Repeat("x", 90) + "\"},\"published_at\":\"2026-12-05T00:00:00.000000Z\"}\n\n"
	stream := strings.Repeat(frame, 1000)
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		r := client.NewFrameReader(strings.NewReader(stream))
		for range 1000 {
			if _, err := r.Next(); err != nil {
				b.Fatal(err)
			}
		}
	}
}
