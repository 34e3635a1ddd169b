// Package pgnotify is the cluster Broadcaster: Herald nodes that share one
// Postgres database deliver each other's messages through LISTEN/NOTIFY,
// behind the same broadcast.Broadcaster interface as the in-process one, so
// neither the publish side nor the SSE handler knows which it holds.
//
// # How a message travels
//
// The signal is part of the publish transaction: the Postgres store calls
// Notifier.NotifyTx before COMMIT, so a notification exists if and only if
// its message committed, and a node that dies right after COMMIT has still
// told the others. The store commits concurrent publishes in groups and the
// messages of one topic in one transaction share one notification: NOTIFY
// takes a database-wide lock at commit, and this spreads its cost over many
// messages instead of dropping any.
//
// A notification carries its messages inline when they fit well under
// Postgres's payload limit (8000 bytes, counted in bytes), and otherwise only
// a pointer (app, topic, id range) that receivers resolve by reading history.
// Every install uses one channel, "herald": channel names are capped at 63
// bytes and topic names are not.
//
// # Receiving
//
// Each node holds one dedicated connection that does nothing but LISTEN. Its
// goroutine hands each notification to the topic's sequencer and goes back to
// reading; it never waits for a subscriber. Local fan-out is a
// broadcast.Memory, whose Publish never blocks, so a subscriber that stops
// reading cannot make this node stop draining Postgres's notification queue,
// which is shared by the whole database cluster and, once full, fails every
// notifying commit.
//
// # Order and exactly once
//
// For each topic with local subscribers a node remembers the id of the last
// event it handed them. Events come from two places, this node's own commits
// (Publish) and other nodes' notifications, and can arrive out of order. The
// sequencer delivers only id last+1, holds later ones, and reads a gap from
// history; anything at or below last is a duplicate and dropped, which is why
// a node's own publish is delivered once. When history no longer holds a gap
// (retention pruned it), the later events are delivered anyway and the SSE
// stream, which watches ids, tells the subscriber what it lost.
//
// # Reconnect and liveness
//
// A lost listener connection is reopened with capped, jittered exponential
// backoff (the first retry within half a second). After each reconnect the
// node LISTENs first and then reads, by id, what every locally subscribed
// topic missed, so an outage loses nothing that history still holds. Every
// CheckInterval the node notifies itself and expects the echo: a listener
// that hears nothing for DeafAfter is treated as dead and reopened, and Ready
// reports an error until the echo is heard again. At Open the same echo is
// required, which is how a URL through a transaction-pooling proxy, where
// LISTEN cannot work, fails at start with a message naming the cause.
package pgnotify
