package sqlite

import (
	"context"
)

const (
	// checkpointEvery is how many publish batches the writer commits between
	// two wake-ups of the checkpointer.
	checkpointEvery = 128
	// walAutoCheckpoint is the WAL size, in pages (4 MiB of them), at which
	// the writer checkpoints by itself (SQLite's wal_autocheckpoint). The
	// checkpointer has copied most of the WAL by then, so little is left to
	// do; once that checkpoint completes, the WAL starts over from its
	// beginning, and the file stops growing. (The checkpointer alone cannot
	// restart the WAL while the writer keeps appending to it.)
	walAutoCheckpoint = 1000
)

// checkpoint is the checkpointer goroutine. Woken by the writer, it runs
// a PASSIVE checkpoint on its own connection: it copies committed pages from
// the WAL into the database file and syncs both, which is the slow part of
// a checkpoint, without holding up the writer, which goes on appending to
// the WAL meanwhile. When the writer's own checkpoint comes due, little is
// left for it to copy and sync.
func (s *Store) checkpoint() {
	ctx := context.Background()
	for {
		select {
		case <-s.closing:
			return
		case <-s.checkpointc:
		}
		// An error (say SQLITE_BUSY while the writer checkpoints itself)
		// loses nothing: the pages stay in the WAL for the next checkpoint,
		// and the writer's own checkpoint bounds the WAL regardless.
		_, _ = s.cdb.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`)
	}
}

// wakeCheckpointer asks the checkpointer for a checkpoint, unless one is
// pending already. It never blocks.
func (s *Store) wakeCheckpointer() {
	select {
	case s.checkpointc <- struct{}{}:
	default:
	}
}
