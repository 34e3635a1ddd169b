// Package postgres is Herald's store for clusters: every node of a cluster
// opens the same Postgres database with pgx (a pgxpool.Pool per Store). It
// implements store.Store and store.Outbox and passes storetest.
//
// # Schema
//
// Every table is in the schema herald, and every query names it, so Herald
// can share a database and a pool with other software. Open applies the
// embedded migrations (migrations/NNNN_what.sql, recorded in
// herald.schema_version) in one transaction that holds an advisory lock,
// so that nodes starting at once take turns and the last ones find nothing
// to do. Open refuses a hot standby, whose transactions are read-only, and
// servers older than PostgreSQL 13.
//
// # Ids
//
// A topic's row is its id counter: a publish transaction takes n ids with
// UPDATE herald.topics SET last_id = last_id + n … RETURNING, which locks
// the row until COMMIT. A transaction on another node that publishes to the
// topic waits for that lock and then reads the committed last_id, so ids
// commit in order, with no gaps and no sequence, and a reader that sees id
// n+1 sees id n. A transaction that rolls back gives its ids back. Prune
// deletes messages only: last_id never goes down.
//
// # Concurrency
//
// Publish uses group commit: callers hand their requests to a writer, one
// of Options.Writers goroutines owned by the Store, which takes the first
// request waiting and every other already on its way (up to
// Options.MaxBatch requests and Options.MaxBatchBytes of bodies) and writes
// them all in one transaction. With several writers, while one waits for
// its commit the next batch is already being written by another, on its
// own connection, so the database is not left idle for a round trip per
// batch; the writers take turns to gather, and a writer passes the turn
// when only its COMMIT is left. Each transaction (three round trips when
// no request carries an idempotency key; BEGIN goes with the first):
//
//  1. if requests carry idempotency keys, read those committed within
//     store.IdempotencyWindow (one round trip, only then): their requests
//     are replays, or conflicts for another topic, and take no id;
//  2. lock the batch's topic rows and take their ids, and read their
//     enabled triggers, in the order of (app, topic) bytewise, one UPDATE
//     per topic in one round trip; the order is the same on every node, so
//     two batches never deadlock;
//  3. insert every message in one statement (arrays through unnest), with
//     a pending delivery per trigger per message when the topics have
//     triggers (the same statement copies the bodies from the rows it
//     inserted), the idempotency keys, if any, in a second, and what
//     Options.QueueBeforeCommitFunc queues (the cluster's NOTIFY), in one
//     round trip;
//  4. run Options.BeforeCommit with the messages ordered by (app, topic,
//     id), in the transaction, so that what it writes commits or rolls
//     back with the messages;
//  5. commit, then call each request's CommittedFunc in batch order, which
//     is id order within a topic, and answer the callers. A writer takes a
//     ticket once its topic locks are held; batches hand their messages
//     over in ticket order. A batch that shares a topic with another waits
//     for that one's commit before it locks the topic, so it takes a later
//     ticket: CommittedFunc calls come in id order per topic, never at
//     once, whichever writer commits first.
//
// A batch publish (PublishBatch) is one unit of the batch: when one of its
// requests fails (a topic that does not exist, a key used with another
// topic), the writer answers the unit with that error and runs the
// transaction again without it, so that it takes no ids.
//
// Deliveries and keys commit with their messages or not at all. Two nodes
// publishing with one key: the second one's insert of the key waits for
// the first's transaction (the primary key); if that commits, the insert
// takes no row, and the batch runs again and finds the key. Keys are
// inserted in (app, key) order, so two batches wait for each other's keys
// in one order.
//
// A request for a topic that does not exist fails alone with
// store.ErrNotFound. A serialization failure, a deadlock or a key another
// node committed meanwhile runs the batch again (at most five times in
// all); any other error fails every request of the batch. Other methods use
// the pool directly.
//
// # Outbox
//
// Claim is one statement: it selects due deliveries FOR UPDATE SKIP LOCKED
// and leases them (lease_until, and next_at, to the lease's end; an attempt
// counted), so two nodes never lease one delivery at once and never wait
// for each other. Settle applies an outcome only while lease_until still
// equals the lease the claim returned. DeleteTrigger locks the topic's row
// as a publish batch does, so that no batch enqueues for a trigger deleted
// under it.
//
// # Creates within a limit
//
// CreateTopicWithin and CreateTriggerWithin lock the app's row FOR NO KEY
// UPDATE, then count and insert in the same transaction, so that creates
// racing on any number of nodes cannot pass the app's limit, or a topic's
// cap on triggers, together. The
// lock conflicts only with itself and with deleting the app: the foreign
// keys of the rows publishes and unlimited creates insert take FOR KEY
// SHARE, which it lets pass. It is taken before any topic row lock.
//
// # Commits whose outcome is unknown
//
// When the connection breaks after COMMIT was sent (the server restarts,
// the network fails, Options.WriteTimeout runs out), the transaction may
// have committed or not. The writer then asks the server, on another
// connection, with pg_xact_status on the transaction's id: committed counts
// as success (CommittedFunc runs, Publish returns the message); aborted is
// an ordinary error. If the server cannot answer within
// Options.WriteTimeout, every Publish of the batch fails with
// ErrCommitUnknown: the messages may be stored, and never is success
// reported for what may not have committed.
//
// # Time
//
// Stamps the store makes come from the database's clock, so every node
// agrees: a message's published_at is greatest(the topic's previous stamp,
// clock_timestamp()), which never goes back along a topic's ids whichever
// node published. Times are timestamptz, microseconds, returned in UTC.
//
// # Lifecycle
//
// Open connects, checks the server, migrates and starts the writer. Close
// stops taking calls, waits for the calls in progress and the writer's
// current batch (publishes not yet taken get store.ErrClosed), stops the
// writer and closes the pool. After Close every method returns
// store.ErrClosed. Whoever took connections from Pool must give them back
// before Close, which waits for them.
//
// # Shared logic
//
// What both stores do alike lives once in sqlstore: prune scheduling and
// chunking, history paging, app limits, and the steps of a publish batch
// that need no database (grouping by topic, replays, conflicts, missing
// topics, the hand-over). This package gives its SQL and its pgx calls
// through seam (seam.go). What stays here is what only Postgres does: the
// topic row locks, taken in one order, that keep ids gap-free across nodes;
// the statements sent as arrays in one round trip; the batch's idempotency
// keys sorted out in memory (one lookup for the whole batch, so an earlier
// call's key is not yet in the table); several writers and their ticket
// order; the hooks, where the cluster's NOTIFY joins the transaction;
// rerunning a batch without a failed batch publish, so that it takes no
// ids; and pg_xact_status after a lost COMMIT.
//
// # Invariants
//
//   - topics.last_id is the id of the newest message ever published to the
//     topic, written only by the publish transaction under the row lock.
//   - A batch's messages of one topic are the ids last_id-n+1 … last_id of
//     the UPDATE that locked it, assigned in batch order.
//   - A delivery's message committed with it; a replayed publish (a known
//     IdempotencyKey) wrote nothing and took no id.
//   - From a Claim until its Settle, a delivery has lease_until = next_at
//     = the end of the lease (a later Claim, once it ran out, moves both);
//     otherwise lease_until is NULL.
//   - Names and ids are text COLLATE "C" (bytewise). A name that is not
//     valid UTF-8 or holds NUL cannot be stored, so it names nothing: it is
//     answered store.ErrNotFound before it reaches a batch, where it would
//     fail every publish with it.
package postgres
