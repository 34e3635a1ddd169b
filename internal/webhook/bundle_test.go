package webhook_test

import (
	"context"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/postgres"
	"github.com/heraldhq/herald/internal/store/sqlite"
	"github.com/heraldhq/herald/internal/webhook"
)

// outboxStore is a store with its outbox, trigger admin and limits, as
// both stores are.
type outboxStore interface {
	store.Store
	store.Outbox
	store.TriggerAdmin
	store.LimitStore
}

// storeKind opens a fresh, empty store of one implementation for a test.
type storeKind struct {
	name string
	open func(t *testing.T) outboxStore
}

func openSQLite(t *testing.T) outboxStore {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "herald.db"), sqlite.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return st
}

// openPostgres opens a Postgres store on a database of its own.
func openPostgres(t *testing.T) outboxStore {
	t.Helper()
	return openPostgresAt(t, pgtest.NewDatabase(t))
}

// openPostgresAt opens a Postgres store on the database at url, as one more
// node of a cluster would.
func openPostgresAt(t *testing.T, url string) *postgres.Store {
	t.Helper()
	st, err := postgres.Open(t.Context(), url, postgres.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return st
}

// storeKinds are the stores the dispatcher is tested on.
func storeKinds() []storeKind {
	return []storeKind{{"sqlite", openSQLite}, {"postgres", openPostgres}}
}

// forEachStore runs test once per store implementation, in parallel.
func forEachStore(t *testing.T, test func(t *testing.T, open func(t *testing.T) outboxStore)) {
	t.Helper()
	for _, k := range storeKinds() {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			test(t, k.open)
		})
	}
}

// testBundle is one test's store, app and topic ("orders").
type testBundle struct {
	st    outboxStore
	app   string
	topic string
	// outcomes gets every outcome the bundle's dispatchers settle.
	outcomes chan settled
}

type settled struct {
	store.Outcome
	Err error
}

func setup(t *testing.T, open func(t *testing.T) outboxStore) *testBundle {
	t.Helper()
	b := &testBundle{st: open(t), app: "app-" + t.Name(), topic: "orders", outcomes: make(chan settled, 10000)}
	require.NoError(t, b.st.CreateApp(t.Context(), store.App{ID: b.app, Name: "test", CreatedAt: time.Now().UTC()}, nil))
	_, _, err := b.st.CreateTopic(t.Context(), b.app, b.topic)
	require.NoError(t, err)
	return b
}

// trigger creates a trigger of the bundle's topic through the trigger
// service, with loopback allowed.
func (b *testBundle) trigger(t *testing.T, url string) store.Trigger {
	t.Helper()
	trs, err := webhook.NewTriggers(webhook.TriggersOptions{
		Store: b.st, Guard: webhook.NewGuard(loopback()), NewIDFunc: func() string { return "trg_" + time.Now().Format("150405.000000000") },
	})
	require.NoError(t, err)
	tr, err := trs.Create(t.Context(), b.app, b.topic, url, "")
	require.NoError(t, err)
	return tr
}

// publish stores a message (and its deliveries) in the bundle's topic.
func (b *testBundle) publish(t *testing.T, body string) store.Message {
	t.Helper()
	m, err := b.st.Publish(t.Context(), store.PublishRequest{AppID: b.app, Topic: b.topic, Body: []byte(body)})
	require.NoError(t, err)
	return m
}

// dispatcher starts a dispatcher on the bundle's store (or on q), with
// loopback allowed and a short poll, unless opts say otherwise. It is
// closed when the test ends.
func (b *testBundle) dispatcher(t *testing.T, opts webhook.DispatcherOptions) *webhook.Dispatcher {
	t.Helper()
	if opts.Queue == nil {
		opts.Queue = b.st
	}
	if opts.Guard == nil {
		opts.Guard = webhook.NewGuard(loopback())
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = 20 * time.Millisecond
	}
	opts.SettledFunc = func(o store.Outcome, err error) { b.outcomes <- settled{o, err} }
	d, err := webhook.NewDispatcher(opts)
	require.NoError(t, err)
	d.Start(t.Context())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, d.Close(ctx))
	})
	return d
}

// nextOutcome waits for the next settled outcome.
func (b *testBundle) nextOutcome(t *testing.T) settled {
	t.Helper()
	select {
	case o := <-b.outcomes:
		return o
	case <-time.After(15 * time.Second):
		t.Fatal("no attempt was settled")
		return settled{}
	}
}

// stats returns the one trigger of the bundle's topic with its counts.
func (b *testBundle) stats(t *testing.T) store.TriggerStats {
	t.Helper()
	ts, err := b.st.ListTriggers(t.Context(), b.app, b.topic)
	require.NoError(t, err)
	require.Len(t, ts, 1)
	return ts[0]
}

// gate holds requests until opened: a receiver that is slow for as long as
// a test wants. Tests defer open, which runs before the cleanups that
// close dispatchers (which wait for their attempts) and receivers.
type gate struct {
	once sync.Once
	ch   chan struct{}
}

func newGate() *gate { return &gate{ch: make(chan struct{})} }

func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

// wait holds a request until the gate opens or the request ends.
func (g *gate) wait(r *http.Request) {
	select {
	case <-g.ch:
	case <-r.Context().Done():
	}
}
