// Package cluster_test runs real `herald serve` processes on one Postgres
// database and kills them, with SIGTERM and with SIGKILL, while messages
// flow: what a cluster must survive without losing anything history holds.
package cluster_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/natstest"
	"github.com/heraldhq/herald/internal/pgtest"
)

const adminToken = "cluster-test-admin"

// binary is the herald binary the tests run, built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "herald-cluster-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "herald")
	build := exec.Command("go", "build", "-o", binary, "github.com/heraldhq/herald/cmd/herald")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build herald:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir) // a temporary directory: nothing to do if it stays
	os.Exit(code)
}

// node is one `herald serve` process.
type node struct {
	URL  string
	cmd  *exec.Cmd
	done chan struct{}
}

// startNode runs herald serve on the database and waits for its ready line.
// An empty db runs the embedded SQLite store instead; extra flags come
// last, so they win (--data-dir, say).
func startNode(t *testing.T, db string, extra ...string) *node {
	t.Helper()
	args := []string{"serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--admin-token", adminToken, "--log-format", "json"}
	if db != "" {
		args = append(args, "--database-url", db)
	}
	cmd := exec.Command(binary, append(args, extra...)...)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	n := &node{cmd: cmd, done: make(chan struct{})}
	ready := make(chan string, 1)
	go func() {
		defer close(n.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var rec struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "herald ready" {
				ready <- rec.Addr
			}
		}
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-n.done
	})
	select {
	case n.URL = <-ready:
	case <-n.done:
		require.FailNow(t, "herald serve exited before it was ready")
	case <-time.After(30 * time.Second):
		require.FailNow(t, "herald serve not ready within 30s")
	}
	return n
}

// stop sends sig and waits for the process to end.
func (n *node) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	require.NoError(t, n.cmd.Process.Signal(sig))
	select {
	case <-n.done:
	case <-time.After(20 * time.Second):
		require.FailNow(t, "herald serve did not exit", "after %v", sig)
	}
}

// newApp creates an app with one topic through n and returns its keys.
func newApp(t *testing.T, n *node, topic string) (app, full, sub string) {
	t.Helper()
	a, err := client.New(n.URL, adminToken).CreateApp(t.Context(), "cluster")
	require.NoError(t, err)
	for _, k := range a.Keys {
		if len(k.Scopes) == 1 {
			sub = k.Key
		} else {
			full = k.Key
		}
	}
	_, _, err = client.New(n.URL, full).CreateTopic(t.Context(), a.ID, topic)
	require.NoError(t, err)
	return a.ID, full, sub
}

// collect reads message ids from s until want of them arrived, or fails.
func collect(t *testing.T, s *client.Stream, want int, onEach func(got int)) []string {
	t.Helper()
	var ids []string
	deadline := time.Now().Add(60 * time.Second)
	for len(ids) < want {
		require.True(t, time.Now().Before(deadline), "got %d of %d events", len(ids), want)
		ev, err := s.Next()
		require.NoError(t, err)
		require.Equal(t, client.EventMessage, ev.Type, "after %d messages: %+v", len(ids), ev)
		ids = append(ids, ev.Message.ID)
		if onEach != nil {
			onEach(len(ids))
		}
	}
	return ids
}

// TestSubscriberFailover stops the node a subscriber is on while messages
// are published through the other node: the subscriber reconnects to the
// survivor with Last-Event-ID and sees every id once, in order.
func TestSubscriberFailover(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			db := pgtest.NewDatabase(t)
			a, b := startNode(t, db), startNode(t, db)
			app, full, sub := newApp(t, a, "orders")

			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			s := client.New(a.URL, sub).Stream(ctx, app, []string{"orders"},
				client.StreamOptions{RetryDelay: 50 * time.Millisecond, Failover: []string{b.URL}})
			defer s.Close()

			const total = 300
			var wg sync.WaitGroup
			defer wg.Wait()
			start := make(chan struct{})
			wg.Go(func() {
				<-start
				pub := client.New(b.URL, full)
				for i := range total {
					_, err := pub.Publish(ctx, app, "orders", fmt.Appendf(nil, "%d", i))
					if !assert.NoError(t, err) {
						return
					}
					time.Sleep(2 * time.Millisecond)
				}
			})
			// The stream connects on its first Next; publishing starts once
			// it is connected, so it can expect every message.
			go func() {
				for range 200 {
					topics, err := client.New(a.URL, full).ListTopics(ctx, app)
					if err == nil && len(topics) == 1 && topics[0].Subscribers == 1 {
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
				close(start)
			}()
			ids := collect(t, s, total, func(got int) {
				if got == total/3 {
					a.stop(t, sig)
				}
			})
			for i, id := range ids {
				require.Equal(t, fmt.Sprint(i+1), id)
			}
			require.GreaterOrEqual(t, s.Connects, 2, "the stream should have moved to the other node")
		})
	}
}

// TestPublishingNodeKilled kills a node with SIGKILL while it takes
// publishes: every message it acknowledged reaches a subscriber on the other
// node (the notification committed with it), and the ids that node sees have
// no gap.
//
// Over NATS the killed node's queued notices die with it: the surviving
// node finds those messages by its periodic check of the topic's last id,
// before any later message arrives to reveal the gap.
func TestPublishingNodeKilled(t *testing.T) {
	t.Parallel()
	for name, extra := range map[string][]string{"notify": nil, "nats": {"--broadcast-url", natstest.URL(t)}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			publishingNodeKilled(t, extra)
		})
	}
}

func publishingNodeKilled(t *testing.T, extra []string) {
	db := pgtest.NewDatabase(t)
	a, b := startNode(t, db, extra...), startNode(t, db, extra...)
	app, full, sub := newApp(t, a, "orders")

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	s := client.New(b.URL, sub).Stream(ctx, app, []string{"orders"}, client.StreamOptions{RetryDelay: 50 * time.Millisecond})
	defer s.Close()
	first := make(chan []string, 1)
	go func() {
		ev, _ := s.Next() // connect, and take the first message
		first <- []string{ev.Message.ID}
	}()
	require.Eventually(t, func() bool {
		topics, err := client.New(b.URL, full).ListTopics(ctx, app)
		return err == nil && len(topics) == 1 && topics[0].Subscribers == 1
	}, 10*time.Second, 20*time.Millisecond)

	var (
		mu    sync.Mutex
		acked []string
		wg    sync.WaitGroup
	)
	pub := client.New(a.URL, full)
	for range 4 {
		wg.Go(func() {
			for {
				m, err := pub.Publish(ctx, app, "orders", []byte(`"x"`))
				if err != nil {
					return // the node is gone
				}
				mu.Lock()
				acked = append(acked, m.ID)
				mu.Unlock()
			}
		})
	}
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= 200 }, 30*time.Second, 5*time.Millisecond)
	a.stop(t, syscall.SIGKILL)
	wg.Wait()

	// Everything acknowledged arrives with no later message to reveal it.
	mu.Lock()
	maxAcked := 0
	for _, id := range acked {
		var n int
		_, err := fmt.Sscan(id, &n)
		require.NoError(t, err)
		maxAcked = max(maxAcked, n)
	}
	mu.Unlock()
	ids := append(<-first, collect(t, s, maxAcked-1, nil)...)

	// One more message through the survivor marks the end of the sequence.
	last, err := client.New(b.URL, full).Publish(t.Context(), app, "orders", []byte(`"last"`))
	require.NoError(t, err)
	var n int
	_, err = fmt.Sscan(last.ID, &n)
	require.NoError(t, err)

	ids = append(ids, collect(t, s, n-len(ids), nil)...)
	seen := make(map[string]bool, len(ids))
	for i, id := range ids {
		require.Equal(t, fmt.Sprint(i+1), id, "a gap or a duplicate on the surviving node")
		seen[id] = true
	}
	mu.Lock()
	defer mu.Unlock()
	for _, id := range acked {
		require.True(t, seen[id], "message %s was acknowledged by the killed node but never delivered", id)
	}
}
