// Package event holds a Herald message event and its wire forms: the JSON
// document a receiver parses (the data of an SSE frame, and the body of a
// webhook delivery) and the text/event-stream frames of every kind, message
// and control alike.
//
// It is a leaf: it imports nothing of Herald's, so the realtime path
// (broadcast, sse) and the durable path (webhook) share one encoder without
// importing each other.
//
// # Invariants
//
//   - Nothing appended here can start a new SSE field: a message is compact
//     JSON (pubsub guarantees it), which holds no raw CR or LF; every string
//     (topic names included) is JSON-escaped; ids are digits.
//   - A message event is encoded once (Event.Frame) and the same bytes go to
//     every subscriber.
package event
