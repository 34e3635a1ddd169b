package event

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// EncodeFrame returns the SSE frame of a message event:
//
//	id: 1842
//	data: {"id":"1842","topic":"orders","message":{...},"published_at":"..."}
//
// followed by a blank line. It is the encoder every stream passes to
// Event.Frame, so each event is encoded once.
func EncodeFrame(ev *Event) []byte {
	b := make([]byte, 0, 96+len(ev.Topic)+len(ev.Message))
	b = append(b, "id: "...)
	b = strconv.AppendUint(b, ev.ID, 10)
	b = append(b, "\ndata: "...)
	b = AppendData(b, ev)
	b = append(b, "\n\n"...)
	return b
}

// AppendFrameWithID appends frame, a frame from EncodeFrame, with its id
// line replaced by id: streams that follow several topics give a cursor of
// every topic's position as the id, not the message id. id must hold no
// CR or LF.
func AppendFrameWithID(b, id, frame []byte) []byte {
	b = append(b, "id: "...)
	b = append(b, id...)
	b = append(b, '\n')
	return append(b, dataLines(frame)...)
}

// dataLines returns a frame from EncodeFrame without its id line.
func dataLines(frame []byte) []byte {
	for i, c := range frame {
		if c == '\n' {
			return frame[i+1:]
		}
	}
	return frame
}

// TimeLayout is how Herald writes the times of messages and records, in
// events, webhook bodies and API answers alike: RFC 3339 in UTC with exactly
// six fractional digits (microseconds, what Postgres keeps), so every
// published_at has one length and compares as a string.
const TimeLayout = "2006-01-02T15:04:05.000000Z07:00"

// AppendData appends the JSON of a message event to b and returns the
// extended buffer:
//
//	{"id":"1842","topic":"orders","message":{...},"published_at":"..."}
//
// It is the data of the event's SSE frame and the body of every webhook
// delivery of the message, so a receiver of either path parses the same
// document. The message must be compact JSON.
func AppendData(b []byte, ev *Event) []byte {
	b = append(b, `{"id":"`...)
	b = strconv.AppendUint(b, ev.ID, 10)
	b = append(b, `","topic":`...)
	b = AppendString(b, ev.Topic)
	b = append(b, `,"message":`...)
	b = append(b, ev.Message...)
	b = append(b, `,"published_at":"`...)
	b = ev.PublishedAt.UTC().AppendFormat(b, TimeLayout)
	b = append(b, `"}`...)
	return b
}

// AppendRetry appends the reconnect delay a stream sends once, at its start.
func AppendRetry(b []byte, d time.Duration) []byte {
	b = append(b, "retry: "...)
	b = strconv.AppendInt(b, d.Milliseconds(), 10)
	return append(b, '\n')
}

// AppendComment appends a comment line and the blank line that ends it: a
// frame EventSource ignores, which keeps an idle connection open (": ping")
// or makes onopen fire (": connected"). text must hold no CR or LF.
func AppendComment(b []byte, text string) []byte {
	b = append(b, ": "...)
	b = append(b, text...)
	return append(b, "\n\n"...)
}

// AppendStartFrame appends the event that opens every stream, whose id is
// the stream's starting position:
//
//	event: start
//	id: 1842
//	data: {"id":"1842"}
//
// It is a named event with data, not an id: line alone, because some client
// libraries keep an id only from an event they dispatch (and one without
// data is never dispatched); onmessage ignores it. id must hold no CR, LF,
// quote or backslash (ids are digits, or a cursor of topic names and
// digits).
func AppendStartFrame(b []byte, id []byte) []byte {
	b = append(b, "event: start\nid: "...)
	b = append(b, id...)
	b = append(b, "\ndata: {\"id\":\""...)
	b = append(b, id...)
	return append(b, "\"}\n\n"...)
}

// AppendLagged appends the control event that tells a slow subscriber it
// lost missed events of topic:
//
//	event: lagged
//	data: {"missed":3,"topic":"orders"}
func AppendLagged(b []byte, missed uint64, topic string) []byte {
	b = append(b, "event: lagged\ndata: {\"missed\":"...)
	b = strconv.AppendUint(b, missed, 10)
	b = append(b, `,"topic":`...)
	b = AppendString(b, topic)
	return append(b, "}\n\n"...)
}

// AppendTopicDeleted appends the control event sent when topic is deleted:
// the stream then ends, or on a multi-topic stream stops carrying it.
//
//	event: topic_deleted
//	data: {"topic":"orders"}
func AppendTopicDeleted(b []byte, topic string) []byte {
	b = append(b, "event: topic_deleted\ndata: {\"topic\":"...)
	b = AppendString(b, topic)
	return append(b, "}\n\n"...)
}

// AppendTokenExpired appends the control event that ends a stream opened
// with a browser token when the token expires.
//
//	event: token_expired
//	data: {"expired_at":"2026-11-28T03:25:12Z"}
func AppendTokenExpired(b []byte, at time.Time) []byte {
	b = append(b, "event: token_expired\ndata: {\"expired_at\":\""...)
	b = at.UTC().AppendFormat(b, time.RFC3339)
	return append(b, "\"}\n\n"...)
}

// AppendKeyRevoked appends the control event that ends a stream opened
// with a key (or a browser token it minted) when the key is revoked.
//
//	event: key_revoked
//	data: {"key":"key_5c0f…"}
func AppendKeyRevoked(b []byte, keyID string) []byte {
	b = append(b, "event: key_revoked\ndata: {\"key\":"...)
	b = AppendString(b, keyID)
	return append(b, "}\n\n"...)
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string, quotes included. Quotes,
// backslashes and control characters are escaped, as are U+2028 and
// U+2029 (JavaScript line terminators) and invalid UTF-8 (as U+FFFD), so
// the result is valid JSON and holds no raw CR or LF. Unlike
// encoding/json it does not escape <, > and &, which are safe here, and it
// allocates only to grow b.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
