package store

import (
	"context"
	"time"
)

// This file is the contract of the key lifecycle: keys issued after an
// app's first ones, listed, and revoked. A revoked key is kept (as a
// revocation, not a key): the other nodes of a cluster learn of it by
// polling Revocations, which is what lets every node drop it from its
// caches within a second without any particular cluster transport.

// Revocation says that a key stopped being valid.
type Revocation struct {
	KeyID string
	AppID string
	// RevokedAt is by the store's clock (the database's in a cluster).
	RevokedAt time.Time
}

// Keys manages an app's keys after CreateApp. Implementations are safe for
// concurrent use, also by several processes on one database where the store
// supports that (Postgres); after Close every method returns ErrClosed.
// Both stores implement it; a caller finds it with a type assertion on its
// store.Store.
//
// A revoked key is never valid again: GetKey returns ErrNotFound for it,
// ListKeys leaves it out, and its id is never issued again (CreateKey gives
// ErrConflict).
type Keys interface {
	// CreateKey adds k to its app (k.AppID). An unknown app gives
	// ErrNotFound, a key id that exists or existed ErrConflict. A zero
	// CreatedAt is stored as now.
	CreateKey(ctx context.Context, k Key) error
	// ListKeys returns an app's valid keys, oldest first, with their
	// LastUsedAt. An unknown app gives ErrNotFound.
	ListKeys(ctx context.Context, appID string) ([]Key, error)
	// RevokeKey revokes a valid key of appID. An unknown key, one of another
	// app, or one already revoked gives ErrNotFound.
	RevokeKey(ctx context.Context, appID, keyID string) (Revocation, error)
	// Revocations returns the revocations with RevokedAt at or after since,
	// oldest first, and the store's clock as it read them: the caller's
	// next since, less a margin for transactions that committed late (a
	// revocation may appear more than once across calls).
	Revocations(ctx context.Context, since time.Time) (revs []Revocation, now time.Time, err error)
	// TouchKeys records when keys were last used (key id to time). A time
	// earlier than the one stored is ignored, as are unknown and revoked
	// keys. Callers write rarely (once a minute per key at most): it is a
	// write.
	TouchKeys(ctx context.Context, used map[string]time.Time) error
}
