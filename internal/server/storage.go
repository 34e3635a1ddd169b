package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	"github.com/heraldhq/herald/internal/store"
)

// fullWatch is the store as the service writes through it: it notices a
// write failing because the disk is full, so /readyz can say so (a load
// balancer then sends traffic to nodes that can take it), and a write
// succeeding again. Only the writes the API makes are watched; reads and
// the optional interfaces (the outbox) are used on the store itself.
type fullWatch struct {
	store.Store
	full atomic.Bool
}

func (f *fullWatch) observe(err error) {
	switch {
	case err == nil:
		f.full.Store(false)
	case errors.Is(err, store.ErrFull):
		f.full.Store(true)
	}
}

func (f *fullWatch) Publish(ctx context.Context, req store.PublishRequest) (store.Message, error) {
	m, err := f.Store.Publish(ctx, req)
	f.observe(err)
	return m, err
}

func (f *fullWatch) PublishBatch(ctx context.Context, reqs []store.PublishRequest) ([]store.Message, error) {
	ms, err := f.Store.PublishBatch(ctx, reqs)
	f.observe(err)
	return ms, err
}

func (f *fullWatch) CreateTopic(ctx context.Context, appID, name string) (store.Topic, bool, error) {
	t, created, err := f.Store.CreateTopic(ctx, appID, name)
	f.observe(err)
	return t, created, err
}

// CreateTopicWithin is the store's (a store.LimitStore, as both are),
// watched: the service creates topics through it when apps have limits.
func (f *fullWatch) CreateTopicWithin(ctx context.Context, appID, name string, max int) (store.Topic, bool, error) {
	ls, ok := f.Store.(store.LimitStore)
	if !ok {
		return store.Topic{}, false, fmt.Errorf("store %T has no limits", f.Store)
	}
	t, created, err := ls.CreateTopicWithin(ctx, appID, name, max)
	f.observe(err)
	return t, created, err
}

func (f *fullWatch) CreateApp(ctx context.Context, app store.App, keys []store.Key) error {
	err := f.Store.CreateApp(ctx, app, keys)
	f.observe(err)
	return err
}

// probeSize is what the readiness probe writes to find out whether the
// data directory has room again: a few SQLite pages' worth, with margin.
const probeSize = 256 << 10

// probeDisk writes and removes a file of probeSize in dir, synced, to find
// out whether writes would succeed there again.
func probeDisk(dir string) error {
	f, err := os.CreateTemp(dir, ".herald-space-probe-*")
	if err != nil {
		return fmt.Errorf("disk probe: %w", err)
	}
	defer func() { _ = os.Remove(f.Name()) }() // a probe left behind is harmless and retried
	_, err = f.Write(make([]byte, probeSize))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("disk probe: %w", err)
	}
	return nil
}

// storageReady reports whether writes can be expected to succeed: an
// error while the last write found the disk full, until a write succeeds
// again. With SQLite the data directory is probed on each call, so a node
// that takes no traffic (because it is not ready) still finds out when
// space was freed; with Postgres, whose disk is elsewhere, the next
// successful write tells.
func (s *Server) storageReady() error {
	if s.watch == nil || !s.watch.full.Load() {
		return nil
	}
	if s.cfg.DatabaseURL == "" { // SQLite, in the data directory
		if err := probeDisk(s.cfg.DataDir); err == nil {
			s.watch.full.Store(false)
			return nil
		}
	}
	return errors.New("the store's disk is full: writes fail until space is freed")
}
