package postgres_test

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/postgres"
	"github.com/heraldhq/herald/internal/store/storetest"
)

// testConns is the pool size of a test's store: tests run in parallel
// against one server with max_connections = 100.
const testConns = 4

// openStore opens a store on dbURL and closes it when t ends.
func openStore(t *testing.T, dbURL string, opts postgres.Options) *postgres.Store {
	t.Helper()
	if opts.MaxConns == 0 {
		opts.MaxConns = testConns
	}
	st, err := postgres.Open(t.Context(), dbURL, opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	return st
}

// connect opens a plain connection to dbURL, closed when tb ends.
func connect(tb testing.TB, dbURL string) *pgx.Conn {
	tb.Helper()
	conn, err := pgx.Connect(tb.Context(), dbURL)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// setupTopic creates an app and a topic in it through st.
func setupTopic(t *testing.T, st store.Store, appID, topic string) {
	t.Helper()
	require.NoError(t, st.CreateApp(t.Context(), store.App{ID: appID, Name: appID}, nil))
	_, created, err := st.CreateTopic(t.Context(), appID, topic)
	require.NoError(t, err)
	require.True(t, created)
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		t.Helper()
		// Small chunks, so that the suite's prune tests take several;
		// several writers, so that batches commit side by side.
		return openStore(t, pgtest.NewDatabase(t), postgres.Options{PruneChunk: 7, Writers: 3})
	})
}

func TestConformanceDefaultOptions(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		t.Helper()
		return openStore(t, pgtest.NewDatabase(t), postgres.Options{MaxConns: testConns})
	})
}

func TestReopenKeepsData(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dbURL := pgtest.NewDatabase(t)

	st, err := postgres.Open(ctx, dbURL, postgres.Options{MaxConns: testConns})
	require.NoError(t, err)
	app := store.App{ID: "app1", Name: "shop"}
	key := store.Key{ID: "key1", AppID: app.ID, SecretHash: []byte{1, 2, 3}, Scopes: []store.Scope{store.ScopePublish}}
	require.NoError(t, st.CreateApp(ctx, app, []store.Key{key}))
	_, _, err = st.CreateTopic(ctx, app.ID, "orders")
	require.NoError(t, err)
	var published []store.Message
	for _, body := range []string{`1`, `{"two":2}`, `3`} {
		msg, err := st.Publish(ctx, store.PublishRequest{AppID: app.ID, Topic: "orders", Body: []byte(body)})
		require.NoError(t, err)
		published = append(published, msg)
	}
	require.NoError(t, st.Close())

	st = openStore(t, dbURL, postgres.Options{})
	gotKey, err := st.GetKey(ctx, key.ID)
	require.NoError(t, err)
	require.Equal(t, key.SecretHash, gotKey.SecretHash)
	msgs, err := st.History(ctx, app.ID, "orders", 0, 10)
	require.NoError(t, err)
	require.Len(t, msgs, len(published))
	for i := range published {
		require.Equal(t, published[i].ID, msgs[i].ID)
		require.Equal(t, published[i].Body, msgs[i].Body)
		require.True(t, published[i].PublishedAt.Equal(msgs[i].PublishedAt))
	}
	// Pruning everything keeps the count, across a reopen too.
	n, err := st.Prune(ctx, store.Retention{}, published[2].PublishedAt.AddDate(1, 0, 0))
	require.NoError(t, err)
	require.Equal(t, int64(3), n)
	require.NoError(t, st.Close())

	st = openStore(t, dbURL, postgres.Options{})
	msg, err := st.Publish(ctx, store.PublishRequest{AppID: app.ID, Topic: "orders", Body: []byte(`4`)})
	require.NoError(t, err)
	require.Equal(t, uint64(4), msg.ID)
	require.False(t, msg.PublishedAt.Before(published[2].PublishedAt))
}

// Nodes of a cluster start at once on a fresh database: the advisory lock
// makes them migrate one after the other, and each migration runs once.
func TestConcurrentOpensOnFreshDatabase(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	const nodes = 4

	start := make(chan struct{})
	stores := make([]*postgres.Store, nodes)
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = postgres.Open(t.Context(), dbURL, postgres.Options{MaxConns: 2})
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "node %d", i)
		t.Cleanup(func() { require.NoError(t, stores[i].Close()) })
	}

	var rows, versions int
	require.NoError(t, connect(t, dbURL).QueryRow(t.Context(),
		`SELECT count(*), count(DISTINCT version) FROM herald.schema_version`).Scan(&rows, &versions))
	require.Equal(t, versions, rows, "a migration was recorded twice")
	require.Positive(t, versions)

	// Every node works on the one schema.
	setupTopic(t, stores[0], "app", "t")
	for i, st := range stores {
		msg, err := st.Publish(t.Context(), store.PublishRequest{AppID: "app", Topic: "t", Body: []byte(`{}`)})
		require.NoError(t, err)
		require.Equal(t, uint64(i+1), msg.ID)
	}
}

// withParams returns dbURL with extra query parameters, which pgx sends as
// settings of the session.
func withParams(t *testing.T, dbURL string, params map[string]string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	q := u.Query()
	for k, v := range params {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// withPassword returns dbURL with a password, which trust auth ignores.
func withPassword(t *testing.T, dbURL, password string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	u.User = url.UserPassword(u.User.Username(), password)
	return u.String()
}

func TestOpenRefusesHotStandby(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	// A real standby needs a second server fed by replication. Instead the
	// connection's search path puts a pg_is_in_recovery that says true
	// before pg_catalog's, which Open calls unqualified.
	pgtest.Exec(t, dbURL, `CREATE SCHEMA standby;
		CREATE FUNCTION standby.pg_is_in_recovery() RETURNS boolean LANGUAGE sql AS 'SELECT true'`)
	const password = "s3cret-pw"
	standbyURL := withParams(t, withPassword(t, dbURL, password), map[string]string{"search_path": "standby,pg_catalog"})

	st, err := postgres.Open(t.Context(), standbyURL, postgres.Options{MaxConns: 2})
	require.Error(t, err)
	require.Nil(t, st)
	msg := err.Error()
	require.Contains(t, msg, "read-only hot standby")
	require.Contains(t, msg, "point --database-url at the primary")
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	require.Contains(t, msg, strings.TrimPrefix(u.Path, "/"), "the error names the database")
	require.NotContains(t, msg, password)

	// Nothing was created on the standby.
	var exists bool
	require.NoError(t, connect(t, dbURL).QueryRow(t.Context(),
		`SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'herald')`).Scan(&exists))
	require.False(t, exists)
}

func TestOpenErrorsHidePassword(t *testing.T) {
	t.Parallel()
	const password = "s3cret-pw"
	for name, dbURL := range map[string]string{
		// Nothing listens on port 1 of the loopback: connection refused.
		"Unreachable":       "postgres://herald:" + password + "@127.0.0.1:1/herald?connect_timeout=5",
		"PasswordParameter": "postgres://herald@127.0.0.1:1/herald?connect_timeout=5&password=" + password,
		"BadPort":           "postgres://herald:" + password + "@127.0.0.1:99999999/herald",
		"KeyValue":          "host=127.0.0.1 port=1 user=herald password=" + password + " dbname=herald connect_timeout=5",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := postgres.Open(t.Context(), dbURL, postgres.Options{})
			require.Error(t, err)
			require.NotContains(t, err.Error(), password)
			require.Contains(t, err.Error(), "postgres:")
		})
	}
}

func TestOpenRejectsBadOptions(t *testing.T) {
	t.Parallel()
	for name, opts := range map[string]postgres.Options{
		"NegativeBatch": {MaxBatch: -1},
		"OneConn":       {MaxConns: 1},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// Checked before connecting: the URL is never used.
			_, err := postgres.Open(t.Context(), "postgres://herald@127.0.0.1:1/none", opts)
			require.ErrorContains(t, err, "options")
		})
	}
}

func TestOddInput(t *testing.T) {
	t.Parallel()
	st := openStore(t, pgtest.NewDatabase(t), postgres.Options{})

	t.Run("UnicodeNames", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		appID, topic := "app-ünï-✓-🎉", "commandes/été 日本語 🎉"
		key := store.Key{ID: "clé-🔑", AppID: appID, SecretHash: []byte("h"), Scopes: []store.Scope{store.ScopeManage}}
		require.NoError(t, st.CreateApp(ctx, store.App{ID: appID, Name: "nom ✓"}, []store.Key{key}))
		_, _, err := st.CreateTopic(ctx, appID, topic)
		require.NoError(t, err)
		msg, err := st.Publish(ctx, store.PublishRequest{AppID: appID, Topic: topic, Body: []byte(`"ok"`)})
		require.NoError(t, err)
		require.Equal(t, uint64(1), msg.ID)

		got, err := st.GetKey(ctx, key.ID)
		require.NoError(t, err)
		require.Equal(t, appID, got.AppID)
		topics, err := st.ListTopics(ctx, appID)
		require.NoError(t, err)
		require.Len(t, topics, 1)
		require.Equal(t, topic, topics[0].Name)
		msgs, err := st.History(ctx, appID, topic, 0, 10)
		require.NoError(t, err)
		require.Equal(t, []uint64{1}, storetest.IDs(msgs))
		require.Equal(t, appID, msgs[0].AppID)
		require.Equal(t, topic, msgs[0].Topic)
	})

	t.Run("BodiesByteExact", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		setupTopic(t, st, "bodies", "t")
		big := make([]byte, 0, 100<<10)
		big = append(big, '"')
		for len(big) < 100<<10-1 {
			big = append(big, "héllo ✓ \\u0000 \\n 🎉 "...)
		}
		big = append(big, '"')
		bodies := [][]byte{
			big,
			// Escaped NUL is valid JSON, which jsonb would reject.
			[]byte(`{"nul":"\u0000","pair":"a\u0000b","end":"\u0000"}`),
			// The store does not judge bodies: raw NUL and bytes that are
			// not UTF-8 come back as they went in.
			{'"', 0x00, 0xff, 0xfe, '"'},
			{},
		}
		for i, body := range bodies {
			msg, err := st.Publish(ctx, store.PublishRequest{AppID: "bodies", Topic: "t", Body: body})
			require.NoError(t, err, "body %d", i)
			require.Equal(t, uint64(i+1), msg.ID)
		}
		msgs, err := st.History(ctx, "bodies", "t", 0, 10)
		require.NoError(t, err)
		require.Len(t, msgs, len(bodies))
		for i, body := range bodies {
			require.True(t, bytes.Equal(body, msgs[i].Body), "body %d changed", i)
		}
	})

	// Postgres text holds neither NUL nor invalid UTF-8, so no topic or app
	// can have such a name: it is not found, and fails no one else.
	t.Run("UnstorableNames", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		setupTopic(t, st, "good", "t")
		bad := []string{"nul\x00inside", "bad utf-8 \xff\xfe"}
		for _, name := range bad {
			_, err := st.Publish(ctx, store.PublishRequest{AppID: "good", Topic: name, Body: []byte(`1`)})
			require.ErrorIs(t, err, store.ErrNotFound)
			_, err = st.Publish(ctx, store.PublishRequest{AppID: name, Topic: "t", Body: []byte(`1`)})
			require.ErrorIs(t, err, store.ErrNotFound)
			_, err = st.GetTopic(ctx, "good", name)
			require.ErrorIs(t, err, store.ErrNotFound)
			_, err = st.History(ctx, name, "t", 0, 10)
			require.ErrorIs(t, err, store.ErrNotFound)
			_, err = st.GetApp(ctx, name)
			require.ErrorIs(t, err, store.ErrNotFound)
			_, err = st.GetKey(ctx, name)
			require.ErrorIs(t, err, store.ErrNotFound)
			require.ErrorIs(t, st.DeleteTopic(ctx, "good", name), store.ErrNotFound)
			_, _, err = st.CreateTopic(ctx, name, "t")
			require.ErrorIs(t, err, store.ErrNotFound)
			_, _, err = st.CreateTopic(ctx, "good", name)
			require.Error(t, err)
		}

		// Mixed with good publishes, all at once: the good ones all land.
		const publishers, each = 4, 25
		errs := make([]error, publishers)
		var wg sync.WaitGroup
		for p := range publishers {
			wg.Go(func() {
				for i := range each {
					if _, err := st.Publish(ctx, store.PublishRequest{AppID: "good", Topic: bad[i%2], Body: []byte(`0`)}); err == nil {
						errs[p] = fmt.Errorf("publish to %q succeeded", bad[i%2])
						return
					}
					if _, err := st.Publish(ctx, store.PublishRequest{AppID: "good", Topic: "t", Body: []byte(`1`)}); err != nil {
						errs[p] = err
						return
					}
				}
			})
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		msgs, err := st.History(ctx, "good", "t", 0, 1000)
		require.NoError(t, err)
		require.Equal(t, storetest.Seq(1, publishers*each), storetest.IDs(msgs))
	})
}

// Outbox methods given text Postgres cannot hold: unknown names are not
// found, an idempotency key fails its own publish only, and an attempt's
// error text is kept, its bad bytes replaced.
func TestOddOutboxInput(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := openStore(t, pgtest.NewDatabase(t), postgres.Options{})
	setupTopic(t, st, "good", "t")
	require.NoError(t, st.CreateTrigger(ctx, store.Trigger{ID: "tr", AppID: "good", Topic: "t", URL: "https://x", Secret: "s"}))
	for _, bad := range []string{"nul\x00inside", "bad utf-8 \xff\xfe"} {
		require.ErrorIs(t, st.CreateTrigger(ctx, store.Trigger{ID: "x", AppID: bad, Topic: "t", URL: "https://x", Secret: "s"}), store.ErrNotFound)
		require.ErrorIs(t, st.CreateTrigger(ctx, store.Trigger{ID: "x", AppID: "good", Topic: bad, URL: "https://x", Secret: "s"}), store.ErrNotFound)
		require.Error(t, st.CreateTrigger(ctx, store.Trigger{ID: "x", AppID: "good", Topic: "t", URL: bad, Secret: "s"}))
		_, err := st.ListTriggers(ctx, "good", bad)
		require.ErrorIs(t, err, store.ErrNotFound)
		require.ErrorIs(t, st.DeleteTrigger(ctx, "good", "t", bad), store.ErrNotFound)
		_, err = st.DeadLetters(ctx, bad, 10)
		require.ErrorIs(t, err, store.ErrNotFound)
		require.ErrorIs(t, st.Redrive(ctx, "good", bad, time.Time{}), store.ErrNotFound)
		require.ErrorIs(t, st.Settle(ctx, store.Outcome{DeliveryID: bad, State: store.DeliveryDead}), store.ErrNotFound)

		_, err = st.Publish(ctx, store.PublishRequest{AppID: "good", Topic: "t", Body: []byte(`1`), IdempotencyKey: bad})
		require.ErrorContains(t, err, "idempotency key")
	}
	msg, err := st.Publish(ctx, store.PublishRequest{AppID: "good", Topic: "t", Body: []byte(`1`), IdempotencyKey: "ok"})
	require.NoError(t, err)
	require.Equal(t, uint64(1), msg.ID)

	ds, err := st.Claim(ctx, time.Now().Add(time.Minute), time.Minute, 10)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	require.NoError(t, st.Settle(ctx, store.Outcome{
		DeliveryID: ds[0].ID, LeaseUntil: ds[0].LeaseUntil, State: store.DeliveryDead, Status: 502,
		Error: "upstream said \x00\xff", At: time.Now(),
	}))
	dead, err := st.DeadLetters(ctx, "good", 10)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	require.Equal(t, "upstream said \uFFFD\uFFFD", dead[0].LastError)
}

// TestSettingAgreed: nodes starting together on one database agree on one
// value, the first stored, and keep it across restarts.
func TestSettingAgreed(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	var wg sync.WaitGroup
	got := make([]string, 4)
	created := make([]bool, 4)
	for i := range got {
		wg.Go(func() {
			st, err := postgres.Open(t.Context(), db, postgres.Options{MaxConns: 2})
			if !assert.NoError(t, err) {
				return
			}
			defer st.Close()
			got[i], created[i], err = st.LoadOrCreateSetting(t.Context(), "admin_token", fmt.Sprint("candidate-", i))
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	n := 0
	for i := range got {
		require.Equal(t, got[0], got[i], "node %d", i)
		if created[i] {
			n++
			require.Equal(t, fmt.Sprint("candidate-", i), got[i])
		}
	}
	require.Equal(t, 1, n, "exactly one node stores its candidate")
}
