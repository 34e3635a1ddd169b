// Package pgnotify is the LISTEN/NOTIFY cluster.Transport: Herald nodes
// that share one Postgres database tell each other of commits through
// Postgres notifications. Order, de-duplication and gap-fill from history
// are the cluster package's sequencer's, above every transport.
//
// # How a message travels
//
// The signal is part of the publish transaction: the Postgres store calls
// Notifier.QueueNotify before COMMIT, so a notification exists if and only if
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
// goroutine hands each notification to the sequencer (cluster.Receiver) and
// goes back to reading; it never waits for a subscriber, since the
// sequencer's Memory fan-out never blocks. So a subscriber that stops
// reading cannot make this node stop draining Postgres's notification
// queue, which is shared by the whole database cluster and, once full,
// fails every notifying commit. Every node hears every notification (one
// channel), and decodes only those of topics it has subscribers for.
//
// # Reconnect and liveness
//
// A lost listener connection is reopened with capped, jittered exponential
// backoff (the first retry within half a second). After each reconnect the
// node LISTENs first and then has the sequencer read, by id, what every
// locally subscribed topic missed (Receiver.Resync), so an outage loses
// nothing that history still holds. Every
// CheckInterval the node notifies itself and expects the echo: a listener
// that hears nothing for DeafAfter is treated as dead and reopened, and Ready
// reports an error until the echo is heard again. At Open the same echo is
// required (Start), which is how a URL through a transaction-pooling proxy, where
// LISTEN cannot work, fails at start with a message naming the cause.
package pgnotify
