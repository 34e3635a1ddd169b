// Package sqlstore holds the logic the SQLite and the Postgres stores share,
// once, above a small seam each of them fills with its SQL and its driver
// calls: the rules of pruning (what goes, in which order, in chunks of what
// size, how a cutoff becomes a bound), of reading history (paging after a
// cursor, what an empty or unknown topic gives), of app limits, and the
// steps of a publish batch that do not depend on the database (grouping
// calls by topic, the answers of replays, conflicts and missing topics, the
// hand-over of a committed batch). groupcommit owns the hand-off of
// publishes to a writer; this package owns what a writer does with a batch
// that is the same on both databases. The conformance cases that pin these
// rules are in storetest, which both stores run.
//
// # What stays in each store
//
// Each store keeps what the two databases genuinely do differently, and says
// why next to it: Postgres locks each topic's row to take ids across nodes,
// sends NOTIFY inside the transaction, pipelines its statements as arrays and
// asks pg_xact_status after a lost COMMIT; SQLite has one writer connection,
// writes a batch publish inside a savepoint, and raises a topic's last id
// from its messages before pruning them.
//
// # Concurrency
//
// Pruner and Limits hold no state that changes: they are as safe for
// concurrent use as the DB they are given, and call it from the calling
// goroutine. Groups is a writer's scratch space and belongs to that one
// writer goroutine.
//
// # Errors
//
// The seam's methods return errors already translated into the store's terms
// (the store's interpretError), so that nothing here names a driver. The
// functions here add short context and otherwise pass errors through.
package sqlstore
