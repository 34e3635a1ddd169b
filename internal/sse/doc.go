// Package sse serves Herald's text/event-stream responses.
//
// A stream subscribes to its topics through the broadcaster, replays history
// after the client's Last-Event-ID, then writes live events as they come.
//
// # Files
//
//   - handler.go: the Handler, its options, and Serve, which admits a
//     stream, sets it up and hands it to the goroutine that runs it.
//   - admission.go: which streams may start, the WaitGroup Close waits on,
//     and the live subscriber count per topic.
//   - conn.go: taking an HTTP/1.x connection over and writing the response
//     head by hand, or writing through the ResponseWriter (HTTP/2).
//   - stream.go: the stream state machine: subscribe, opening, replay,
//     live events, heartbeats, control events, the end.
//   - revoke.go: the streams of each key, which revoking the key ends.
//   - cursor.go: the Last-Event-ID of a multi-topic stream.
//
// Every frame, message or control event, is encoded by package event.
//
// # Wire format
//
// One frame per message, with no event: line so that EventSource's onmessage
// fires:
//
//	id: 1842
//	data: {"id":"1842","topic":"orders","message":{"total":12},"published_at":"..."}
//
// Every stream opens with "start" (data {"id":P}) whose id is the starting
// position P: a client that reconnects before the first message resumes from
// there. It is a named event with data, not an id: line alone, because some
// client libraries keep an id only from an event they dispatch.
//
// Control events are named: "lagged" (data {"missed":N,"topic":T}) when the
// subscriber lost N events, and "topic_deleted" before the stream ends (or,
// on a multi-topic stream, stops carrying that topic). A stream opened with
// a browser token ends at the token's expiry (Request.Until) after
// "token_expired" (data {"expired_at":T}); a stream opened with a key, or
// with a browser token the key minted, ends after "key_revoked" (data
// {"key":K}) when the key is revoked (Handler.EndKey). ": ping" comments
// keep idle connections open.
//
// # Invariants
//
//   - Each event is encoded once (event.Event.Frame with event.EncodeFrame);
//     every stream writes the same bytes.
//   - No silent gap: ids grow by one per message within a topic, so a stream
//     that is about to skip ids sends "lagged" with the exact count first.
//   - No duplicate at the switch from replay to live: live events at or below
//     the position replay reached are skipped.
//   - On a multi-topic stream the id is a cursor naming every topic's
//     position ("a:12,b:7"), so the single Last-Event-ID a browser keeps
//     resumes each topic without a gap.
//
// # Concurrency
//
// Each stream runs in one goroutine. On HTTP/1.x it is a goroutine the
// stream starts for itself once it has taken the connection over (its
// request's goroutine carries a stack grown by setup); on HTTP/2 it is the
// request's. Either way it is counted in the Handler's admission, so Close
// waits for it, and that goroutine alone runs the stream's cleanup
// (stream.end). It waits on one wake channel shared by its subscriptions, a
// heartbeat ticker and its context. Writes are batched: whatever is pending
// when the stream wakes goes out in one write under a deadline, with no
// lock held.
package sse
