package sse

import (
	"strconv"

	"github.com/heraldhq/herald/internal/broadcast"
)

// TimeLayout is how Herald writes the times of messages and records, in
// events, webhook bodies and API answers alike: RFC 3339 in UTC with exactly
// six fractional digits (microseconds, what Postgres keeps), so every
// published_at has one length and compares as a string.
const TimeLayout = "2006-01-02T15:04:05.000000Z07:00"

// EncodeEvent returns the SSE frame of a message event:
//
//	id: 1842
//	data: {"id":"1842","topic":"orders","message":{...},"published_at":"..."}
//
// followed by a blank line. It is the encoder every stream passes to
// broadcast.Event.Frame, so each event is encoded once. The message must be
// compact JSON (pubsub guarantees it), which holds no CR or LF; the topic is
// restricted to A-Z a-z 0-9 . _ - and the id is digits, so nothing here can
// start a new SSE field.
func EncodeEvent(ev *broadcast.Event) []byte {
	b := make([]byte, 0, 96+len(ev.Topic)+len(ev.Message))
	b = append(b, "id: "...)
	b = strconv.AppendUint(b, ev.ID, 10)
	b = append(b, "\ndata: "...)
	b = AppendData(b, ev)
	b = append(b, "\n\n"...)
	return b
}

// AppendData appends the JSON of a message event, the data of its SSE frame,
// to b and returns the extended buffer:
//
//	{"id":"1842","topic":"orders","message":{...},"published_at":"..."}
//
// It is also the body of every webhook delivery of the message (package
// webhook), so a receiver of either path parses the same document. The
// message must be compact JSON, as for EncodeEvent.
func AppendData(b []byte, ev *broadcast.Event) []byte {
	b = append(b, "{\"id\":\""...)
	b = strconv.AppendUint(b, ev.ID, 10)
	b = append(b, "\",\"topic\":\""...)
	b = append(b, ev.Topic...)
	b = append(b, "\",\"message\":"...)
	b = append(b, ev.Message...)
	b = append(b, ",\"published_at\":\""...)
	b = ev.PublishedAt.UTC().AppendFormat(b, TimeLayout)
	b = append(b, "\"}"...)
	return b
}

// dataPart returns the frame without its id line, for streams whose id is a
// cursor rather than the message id.
func dataPart(frame []byte) []byte {
	for i, c := range frame {
		if c == '\n' {
			return frame[i+1:]
		}
	}
	return frame
}
