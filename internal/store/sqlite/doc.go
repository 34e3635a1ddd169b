// Package sqlite is Herald's default store: one SQLite file, opened with
// modernc.org/sqlite (pure Go, no cgo). It implements store.Store and passes
// storetest.
//
// # Durability
//
// The file is in WAL mode with synchronous=NORMAL. A transaction that has
// committed survives a crash of the process (the WAL is written before
// COMMIT returns); only a crash of the operating system or a power loss can
// lose the last transactions that committed before it, never corrupt the
// file. Every method returns only after its transaction committed.
//
// # Concurrency
//
// Writes go through one connection (a pool of one), so they never meet
// SQLITE_BUSY from each other. Reads go through a separate pool of read-only
// (query_only) connections and, thanks to WAL, never wait for the writer.
//
// Publish uses group commit: callers hand their requests to the writer, a
// goroutine owned by the Store, which takes the first request waiting and
// every other already queued (up to Options.MaxBatch), writes them all in one
// transaction and commits once. Ids are assigned in commit order. A request
// for a topic that does not exist fails alone; a failed commit fails the
// whole batch. CommittedFunc is called by the writer, after the commit, in
// batch order, so calls for one topic come in id order and never overlap.
//
// Other writes (apps, topics, Prune) use the write connection directly and
// take turns with the writer's batches.
//
// # Lifecycle
//
// Open migrates the schema (embedded migrations, one transaction each,
// recorded in schema_version) and starts the writer. Close stops taking
// calls, waits for the calls in progress and the writer's current batch,
// stops the writer and closes the file. After Close every method returns
// store.ErrClosed.
//
// # Invariants
//
//   - topics.last_id is the id of the newest message ever published to the
//     topic; the messages of a topic are a range of ids ending at most at
//     last_id, and Prune only removes the oldest end of it.
//   - published_at never decreases along a topic's ids: the writer stamps a
//     batch with max(now, previous stamp) within the life of a Store.
//   - Times are stored as INTEGER unix nanoseconds in UTC, so they are exact
//     between 1678 and 2262.
//   - Only this process writes the file while it is open. (Another process
//     could, with the busy timeout to wait on locks, but nothing needs it.)
package sqlite
