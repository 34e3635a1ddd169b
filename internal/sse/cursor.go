package sse

import (
	"errors"
	"strconv"
	"strings"
)

// A cursor is the position of a stream in each of its topics. On a
// single-topic stream it is the plain message id; on a multi-topic stream it
// is "topic:id,topic:id…" in the stream's topic order, so that the one
// Last-Event-ID a browser keeps resumes every topic without a gap.
// Topic names cannot hold ':' or ',', so the format is unambiguous.

var errBadCursor = errors.New("invalid Last-Event-ID")

// parseCursor reads a Last-Event-ID for a stream of topics. Topics missing
// from it have no position (ok false in the result map).
func parseCursor(s string, topics []string) (map[string]uint64, error) {
	pos := make(map[string]uint64, len(topics))
	if s == "" {
		return pos, nil
	}
	if len(topics) == 1 && !strings.Contains(s, ":") {
		id, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return nil, errBadCursor
		}
		pos[topics[0]] = id
		return pos, nil
	}
	for part := range strings.SplitSeq(s, ",") {
		name, idText, ok := strings.Cut(part, ":")
		if !ok {
			return nil, errBadCursor
		}
		id, err := strconv.ParseUint(idText, 10, 64)
		if err != nil {
			return nil, errBadCursor
		}
		pos[name] = id // topics not in this stream are ignored below
	}
	return pos, nil
}

// appendCursor appends the cursor of a multi-topic stream.
func appendCursor(b []byte, topics []string, pos []uint64) []byte {
	for i, t := range topics {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, t...)
		b = append(b, ':')
		b = appendUint(b, pos[i])
	}
	return b
}

func appendUint(b []byte, v uint64) []byte { return strconv.AppendUint(b, v, 10) }
