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
//     head by hand, writes to it that do not wait (directWriter), or
//     writing through the ResponseWriter (HTTP/2).
//   - stream.go: the stream state machine: subscribe, opening, replay,
//     live events, heartbeats, control events, the end; who owns it.
//   - fanout.go: the fan-out workers and their shared run queue, which
//     write published frames to direct streams without waiting.
//   - conn_send_linux.go, conn_send_other.go: the one system call those
//     writes make; conn_send_windows.go: none (every stream there writes
//     from its own goroutine).
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
// Each stream has a goroutine of its own. On HTTP/1.x it is one the stream
// starts once it has taken the connection over (its request's goroutine
// carries a stack grown by setup); on HTTP/2 it is the request's. Either
// way it is counted in the Handler's admission, so Close waits for it, and
// that goroutine alone runs the stream's cleanup (stream.end). It writes the
// opening and the replay, then, on HTTP/1.x, hands the stream to the
// Handler's fan-out (fanout.go: about one worker per core, sharing one run
// queue) and waits.
//
// A publish queues each stream it reaches on the run queue (the
// subscription's wake), once however often it is woken, and wakes a worker
// if none is awake; workers take the queue a chunk at a time, and one that
// leaves more than a chunk behind wakes another. A worker writes each
// stream's pending frames, already encoded, with one send(2) that does not
// wait (syscall.RawConn, stopping at EAGAIN): no goroutine wakes per
// delivery, a publish that reaches a few streams wakes one worker, and
// events that pile up for one stream go out in one write. A stream whose socket does not take the
// whole write is parked: its goroutine writes the rest under the write
// deadline (a client that stopped reading is cut off there), drains what
// its ring holds meanwhile (drop-oldest, with an exact "lagged"), and hands
// the stream back to the worker. The end of a stream (its context, a
// revoked key, an expired token, its last topic dropped) is parked too, so
// that its goroutine writes the last control event and cleans up. One of
// the two owns a stream's delivery state at a time (see stream), so a
// stream never sends an event twice or out of order across the switches.
// HTTP/2 streams, and connections without a file descriptor (TLS), are
// always parked: their goroutine writes, as before.
//
// The goroutine waits on one wake channel: its subscriptions' wakes (while
// parked), a heartbeat timer and its context reach it through the stream's
// notify, which wakes whichever side owns the stream. Writes are batched:
// whatever is pending when the owner looks goes out in one write, with no
// lock held.
package sse
