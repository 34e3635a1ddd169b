package config_test

import (
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/config"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := config.Parse(nil, env(nil), io.Discard)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:8080", c.Addr)
	require.Equal(t, "./herald-data", c.DataDir)
	require.Empty(t, c.DatabaseURL)
	require.Empty(t, c.AdminToken)
	require.Equal(t, 64<<10, c.MaxMessageBytes)
	require.Equal(t, 4<<20, c.MaxBatchBytes)
	require.Equal(t, 1000, c.HistoryKeep)
	require.Equal(t, 24*time.Hour, c.HistoryMaxAge)
	require.Equal(t, 512, c.BufferSize)
	require.Equal(t, 15*time.Second, c.Heartbeat)
	require.Equal(t, 30*time.Second, c.WriteTimeout)
	require.Equal(t, 10*time.Second, c.ReadTimeout)
	require.Equal(t, 30*time.Second, c.DatabaseWriteTimeout)
	require.Equal(t, 64, c.MaxMessageDepth)
	require.Equal(t, config.DefaultMaxConnections(), c.MaxConnections)
	require.Positive(t, c.MaxConnections)
}

func TestHardeningFlagsHaveVariables(t *testing.T) {
	t.Parallel()
	c, err := config.Parse(nil, env(map[string]string{
		"HERALD_READ_TIMEOUT": "3s", "HERALD_MAX_CONNECTIONS": "50", "HERALD_MAX_MESSAGE_DEPTH": "8",
		"HERALD_DATABASE_WRITE_TIMEOUT": "4s",
	}), io.Discard)
	require.NoError(t, err)
	require.Equal(t, 3*time.Second, c.ReadTimeout)
	require.Equal(t, 4*time.Second, c.DatabaseWriteTimeout)
	require.Equal(t, 50, c.MaxConnections)
	require.Equal(t, 8, c.MaxMessageDepth)
	for _, bad := range [][]string{{"--read-timeout", "0s"}, {"--max-connections", "0"}, {"--max-message-depth", "-1"}, {"--database-write-timeout", "0s"}} {
		_, err := config.Parse(bad, env(nil), io.Discard)
		require.ErrorContains(t, err, bad[0]+" must be positive")
	}
}

func TestEnvironmentMirrorsFlagsAndFlagsWin(t *testing.T) {
	t.Parallel()
	e := env(map[string]string{
		"HERALD_ADDR": "127.0.0.1:9000", "HERALD_DATA_DIR": "/d", "HERALD_ADMIN_TOKEN": "tok-0123456789abcdef0123456789abcdef",
		"HERALD_BUFFER_SIZE": "64", "HERALD_HEARTBEAT": "-1s", "HERALD_DATABASE_URL": "postgres://x/y",
		"HERALD_MAX_BATCH_BYTES": "1024",
		"HERALD_BROADCAST_URL":   "nats://127.0.0.1:4222",
	})
	c, err := config.Parse([]string{"--addr", "127.0.0.1:9001"}, e, io.Discard)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:9001", c.Addr, "a flag wins over its variable")
	require.Equal(t, "/d", c.DataDir)
	require.Equal(t, "tok-0123456789abcdef0123456789abcdef", c.AdminToken)
	require.Equal(t, 64, c.BufferSize)
	require.Equal(t, -time.Second, c.Heartbeat, "a negative heartbeat disables it")
	require.Equal(t, "postgres://x/y", c.DatabaseURL)
	require.Equal(t, 1024, c.MaxBatchBytes)
	require.Equal(t, "nats://127.0.0.1:4222", c.BroadcastURL)
}

func TestDatabaseURLTakesEitherForm(t *testing.T) {
	t.Parallel()
	for _, dsn := range []string{
		"postgres://herald@db.internal:5432/herald",
		"postgresql://herald@db.internal/herald?sslmode=disable",
		"host=db.internal port=5432 dbname=herald user=herald",
		"host=/var/run/postgresql dbname='my db'",
	} {
		c, err := config.Parse([]string{"--database-url", dsn}, env(nil), io.Discard)
		require.NoError(t, err, dsn)
		require.Equal(t, dsn, c.DatabaseURL)
	}
}

func TestDatabaseURLErrorHidesThePassword(t *testing.T) {
	t.Parallel()
	_, err := config.Parse([]string{"--database-url", "postgres://u:hunter2@db:notaport/x"}, env(nil), io.Discard)
	require.ErrorContains(t, err, "--database-url")
	require.NotContains(t, err.Error(), "hunter2")
}

func TestInvalidConfigSaysWhat(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--buffer-size", "0"}, nil, "--buffer-size must be positive"},
		{[]string{"--max-batch-bytes", "0"}, nil, "--max-batch-bytes must be positive"},
		{nil, map[string]string{"HERALD_BUFFER_SIZE": "lots"}, "HERALD_BUFFER_SIZE"},
		{nil, map[string]string{"HERALD_WRITE_TIMEOUT": "30"}, "HERALD_WRITE_TIMEOUT"},
		{[]string{"--database-url", "mysql://x"}, nil, "postgres://"},
		{[]string{"--database-url", "host=db dbname"}, nil, "key=value"},
		{[]string{"--database-url", "postgres://u:hunter2@db:notaport/x"}, nil, "--database-url"},
		{[]string{"--broadcast-url", "nats://127.0.0.1:4222"}, nil, "--broadcast-url needs --database-url"},
		{[]string{"--database-url", "postgres://x/y", "--broadcast-url", "redis://x"}, nil, "nats://"},
		{[]string{"--log-format", "xml"}, nil, "--log-format"},
		{[]string{"--log-level", "loud"}, nil, "--log-level"},
		{[]string{"extra"}, nil, "unexpected argument"},
		{[]string{"--nope"}, nil, "not defined"},
		{[]string{"--token-secret", "short"}, nil, "--token-secret must be at least 32"},
		{[]string{"--admin-token", "hunter2"}, nil, "--admin-token must be at least 32"},
		{nil, map[string]string{"HERALD_ADMIN_TOKEN": strings.Repeat("x", 31)}, "--admin-token must be at least 32"},
		{[]string{"--tls-cert", "c.pem"}, nil, "--tls-cert and --tls-key go together"},
		{nil, map[string]string{"HERALD_TLS_KEY": "k.pem"}, "--tls-cert and --tls-key go together"},
		{[]string{"--cors-origins", "https://a.example/"}, nil, "write https://a.example"},
		{[]string{"--cors-origins", "https://a.example/app"}, nil, "no path"},
		{[]string{"--cors-origins", "a.example"}, nil, "scheme://host"},
		{[]string{"--cors-origins", "ftp://a.example"}, nil, "scheme://host"},
		{[]string{"--webhook-allow-nets", "127.0.0.1/33"}, nil, "--webhook-allow-nets"},
		{nil, map[string]string{"HERALD_WEBHOOK_ALLOW_NETS": "loopback"}, "--webhook-allow-nets"},
		{[]string{"--webhook-retry-schedule", "5s,,1m"}, nil, "--webhook-retry-schedule"},
		{[]string{"--webhook-retry-schedule", "5s,-1m"}, nil, "--webhook-retry-schedule"},
		{[]string{"--webhook-concurrency", "0"}, nil, "--webhook-concurrency must not be 0"},
		{[]string{"--webhook-timeout", "0s"}, nil, "--webhook-timeout must be positive"},
		{[]string{"--dead-letter-retention", "72h"}, nil, "at least 168h"},
	} {
		_, err := config.Parse(tc.args, env(tc.env), io.Discard)
		require.ErrorContains(t, err, tc.want, "%v %v", tc.args, tc.env)
	}
}

func TestWebSettings(t *testing.T) {
	t.Parallel()
	c, err := config.Parse(nil, env(nil), io.Discard)
	require.NoError(t, err)
	require.Empty(t, c.CORSOrigins, "no CORS unless asked for")
	require.Empty(t, c.TokenSecret)
	require.Empty(t, c.TLSCert)

	e := env(map[string]string{
		"HERALD_CORS_ORIGINS": " https://App.Example.com , http://localhost:3000,*",
		"HERALD_TOKEN_SECRET": "0123456789abcdef0123456789abcdef",
		"HERALD_TLS_CERT":     "/c.pem", "HERALD_TLS_KEY": "/k.pem",
	})
	c, err = config.Parse(nil, e, io.Discard)
	require.NoError(t, err)
	require.Equal(t, []string{"https://app.example.com", "http://localhost:3000", "*"}, c.CORSOrigins,
		"trimmed and lowercased, as browsers send Origin")
	require.Equal(t, "0123456789abcdef0123456789abcdef", c.TokenSecret)
	require.Equal(t, "/c.pem", c.TLSCert)
	require.Equal(t, "/k.pem", c.TLSKey)

	c, err = config.Parse([]string{"--cors-origins", "https://b.example"}, e, io.Discard)
	require.NoError(t, err)
	require.Equal(t, []string{"https://b.example"}, c.CORSOrigins, "the flag wins")
}

func TestWebhookSettings(t *testing.T) {
	t.Parallel()
	c, err := config.Parse(nil, env(nil), io.Discard)
	require.NoError(t, err)
	require.Empty(t, c.WebhookAllowNets, "every special-purpose address refused unless asked for")
	require.Equal(t, 15*time.Second, c.WebhookTimeout)
	require.Equal(t, 16, c.WebhookConcurrency)
	require.Equal(t, []time.Duration{
		5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour,
	}, c.WebhookRetries, "the Standard Webhooks schedule")
	require.Equal(t, 500*time.Millisecond, c.WebhookPollInterval)
	require.Equal(t, 24*time.Hour, c.WebhookRetention)
	require.Equal(t, 7*24*time.Hour, c.DeadLetterRetention)

	e := env(map[string]string{
		"HERALD_WEBHOOK_ALLOW_NETS": "127.0.0.0/8, fd00::/8", "HERALD_WEBHOOK_TIMEOUT": "2s",
		"HERALD_WEBHOOK_CONCURRENCY": "-1", "HERALD_WEBHOOK_RETRY_SCHEDULE": "50ms, 100ms,200ms",
		"HERALD_WEBHOOK_POLL_INTERVAL": "10ms", "HERALD_WEBHOOK_RETENTION": "1h", "HERALD_DEAD_LETTER_RETENTION": "720h",
	})
	c, err = config.Parse([]string{"--webhook-concurrency", "4"}, e, io.Discard)
	require.NoError(t, err)
	require.Equal(t, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}, c.WebhookAllowNets)
	require.Equal(t, 2*time.Second, c.WebhookTimeout)
	require.Equal(t, 4, c.WebhookConcurrency, "the flag wins")
	require.Equal(t, []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond}, c.WebhookRetries)
	require.Equal(t, 10*time.Millisecond, c.WebhookPollInterval)
	require.Equal(t, time.Hour, c.WebhookRetention)
	require.Equal(t, 30*24*time.Hour, c.DeadLetterRetention)
}
