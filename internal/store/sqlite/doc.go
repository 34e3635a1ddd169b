// Package sqlite is Herald's default store: one SQLite file, opened with
// modernc.org/sqlite (pure Go, no cgo). It implements store.Store and
// store.Outbox and passes storetest.
//
// # Durability
//
// The file is in WAL mode with synchronous=NORMAL. A transaction that has
// committed survives a crash of the process: COMMIT returns only after the
// transaction is written to the WAL file, and the operating system keeps
// what was written. Only an operating system crash or a power loss can lose
// the last transactions that committed before it (those not yet synced, at
// the latest at the next checkpoint); it never corrupts the file. Every
// method returns only after its transaction committed.
//
// # Concurrency
//
// Writes go through one connection (a pool of one), so they never meet
// SQLITE_BUSY from each other. Reads go through a separate pool of read-only
// (query_only) connections and, thanks to WAL, never wait for the writer.
//
// Publish uses group commit: callers hand their requests to the writer, a
// goroutine owned by the Store, which takes the first request waiting and
// every other already on its way (up to Options.MaxBatch), writes them all in
// one transaction and commits once. Ids are assigned in commit order. A
// request for a topic that does not exist fails alone; a failed commit fails
// the whole batch. The writer calls CommittedFunc after the commit, in batch
// order, so that calls for one topic come in id order and never overlap.
// A batch publish (PublishBatch) is written inside a savepoint of the
// batch's transaction: when one of its requests fails, the savepoint is
// rolled back and the others of the batch are kept.
//
// The writer borrows the write connection for each batch and runs the
// batch on the driver's connection itself, with its statements (BEGIN,
// COMMIT and the savepoints included) prepared on it once (see wconn):
// database/sql's work per transaction and per statement is most of what a
// batch costs besides SQLite's own. Other writes (apps, topics, triggers,
// Claim, Settle, Redrive, Prune, PruneDeliveries) use the write connection
// through database/sql and take turns with the writer's batches.
//
// # Outbox
//
// The writer's batch transaction also inserts a pending delivery per
// enabled trigger of a topic per message, so a message commits with its
// deliveries or neither does. It reads a topic's head (row id, last id,
// enabled triggers) once, with the triggers in the same statement, and
// keeps it for the batches that follow, for as long as nothing else has
// committed to the file since its own last commit (see heads). Before it
// gives a publish with an IdempotencyKey an id, it looks the key up in the
// same transaction: a key recorded within store.IdempotencyWindow makes the
// publish a replay of the recorded message, which writes nothing. Publishes
// with one key in one batch find the row the first of them wrote.
//
// Claim is one write transaction: it selects the due deliveries and leases
// them, setting lease_until and next_at to the lease's end and counting an
// attempt. Nothing else writes meanwhile, so no two Claims lease one
// delivery. Settle applies an outcome only while lease_until still equals
// the lease the claim returned.
//
// A second goroutine, the checkpointer, copies the WAL back into the
// database file on a connection of its own, so that the syncs a checkpoint
// needs happen off the writer's path.
//
// # Lifecycle
//
// Open migrates the schema (embedded migrations, one transaction each,
// recorded in schema_version) and starts the writer and the checkpointer.
// Close stops taking calls, waits for the calls in progress and the writer's
// current batch, stops both goroutines and closes the file. After Close
// every method returns store.ErrClosed.
//
// # Shared logic
//
// What both stores do alike lives once in sqlstore: prune scheduling and
// chunking, history paging, app limits, and the steps of a publish batch
// that need no database (grouping by topic, replays, conflicts, missing
// topics, the hand-over). This package gives its SQL and its database/sql
// calls through seam (seam.go). What stays here is what only SQLite does:
// one writer connection, so ids need no locks; a savepoint around each
// batch publish, so that one failing takes back only its own rows; an
// idempotency lookup per call, which on the one connection costs no round
// trip and sees what the batch wrote before; raising a topic's stored
// last id before pruning, since its last id is derived from its messages;
// and the checkpointer.
//
// # Invariants
//
//   - A topic's last id is the greater of topics.last_id and the id of its
//     newest message (see lastIDExpr). Publish does not write the topics
//     row, so that a commit only writes pages of messages (and of the
//     outbox, for topics with triggers or publishes with keys); Prune
//     raises topics.last_id before it deletes, so the last id never goes
//     back and a topic's history is a range of ids that only loses its
//     oldest end.
//   - A delivery's message committed with it; a replayed publish (a known
//     IdempotencyKey) wrote nothing.
//   - From a Claim until its Settle, a delivery has lease_until = next_at
//     = the end of the lease (a later Claim, once it ran out, moves both);
//     otherwise lease_until is NULL.
//   - published_at never decreases along a topic's ids: the writer stamps a
//     batch with max(now, previous stamp) within the life of a Store.
//   - Times are stored as INTEGER unix nanoseconds in UTC, so they are exact
//     between 1678 and 2262.
package sqlite
