package loadtest

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Timeouts of the server bench starts for itself.
const (
	childReadyTimeout = 30 * time.Second
	childStopTimeout  = 10 * time.Second
)

// childServer is a `herald serve` that bench started as a child process, on
// a random port and a temporary data directory. It inherits the environment,
// so HERALD_* variables (HERALD_BUFFER_SIZE, HERALD_HEARTBEAT, …) tune it;
// what bench sets wins over them: the address, data directory and admin
// token as flags, and the store as HERALD_DATABASE_URL, set (to bench's
// --database-url, or empty for SQLite) whatever the inherited value.
type childServer struct {
	URL   string
	Token string

	cmd     *exec.Cmd
	dataDir string
	log     *readyWatcher
	exited  chan struct{} // closed once cmd.Wait has returned
	waitErr error         // cmd.Wait's result; read after exited is closed

	stopOnce sync.Once
	stopErr  error
}

// childOptions is what a child server is started with.
type childOptions struct {
	// command runs `herald serve`: the program and its first arguments.
	command []string
	// token is the admin token; every node of a cluster needs the same one.
	token string
	// databaseURL selects the Postgres store; empty means SQLite in the
	// child's data directory.
	databaseURL string
	// broadcastURL is the cluster transport's URL; empty means
	// LISTEN/NOTIFY.
	broadcastURL string
}

// startChildServer runs opts.command and waits until the server logs that
// it is ready.
func startChildServer(ctx context.Context, opts childOptions) (*childServer, error) {
	dir, err := os.MkdirTemp("", "herald-bench-")
	if err != nil {
		return nil, fmt.Errorf("create server data directory: %w", err)
	}
	s := &childServer{
		Token:   opts.token,
		dataDir: dir,
		log:     newReadyWatcher(),
		exited:  make(chan struct{}),
	}
	args := append(slices.Clone(opts.command[1:]), "--addr", "127.0.0.1:0", "--data-dir", dir,
		"--admin-token", s.Token, "--log-format", "json")
	s.cmd = exec.Command(opts.command[0], args...)
	// The URL goes in the environment rather than argv, where ps would show
	// a password in it; the last value of a variable wins.
	s.cmd.Env = append(os.Environ(), "HERALD_DATABASE_URL="+opts.databaseURL, "HERALD_BROADCAST_URL="+opts.broadcastURL)
	s.cmd.Stderr = s.log
	// Bound Wait even if something else holds the server's stderr open.
	s.cmd.WaitDelay = childStopTimeout
	if err := s.cmd.Start(); err != nil {
		_ = os.RemoveAll(dir) // best effort: the start failure is what matters
		return nil, fmt.Errorf("start server: %w", err)
	}
	// This goroutine ends when the child does; stop makes sure it does.
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()

	timer := time.NewTimer(childReadyTimeout)
	defer timer.Stop()
	select {
	case <-s.log.ready:
		s.URL = s.log.Addr()
		return s, nil
	case <-s.exited:
		// Stop would only repeat the exit status and the log.
		_ = s.Stop()
		return nil, fmt.Errorf("server exited before it was ready: %w; its log:\n%s",
			cmp.Or(s.waitErr, errors.New("exit status 0")), s.log.Tail())
	case <-timer.C:
		err = fmt.Errorf("server not ready after %s; its log:\n%s", childReadyTimeout, s.log.Tail())
	case <-ctx.Done():
		err = ctx.Err()
	}
	return nil, errors.Join(err, s.Stop())
}

// startChildServers starts n servers with opts, one after another, under
// one new admin token. Without a database URL each server has a SQLite
// store of its own, so n should be 1. On error, those already started are
// stopped.
func startChildServers(ctx context.Context, n int, opts childOptions) ([]*childServer, error) {
	// 52 characters: --admin-token takes 32 or more.
	opts.token = rand.Text() + rand.Text()
	servers := make([]*childServer, 0, n)
	for i := range n {
		s, err := startChildServer(ctx, opts)
		if err != nil {
			if n > 1 {
				err = fmt.Errorf("node %d: %w", i, err)
			}
			return nil, errors.Join(err, stopChildServers(servers))
		}
		servers = append(servers, s)
	}
	return servers, nil
}

// stopChildServers stops every server, all at once, and joins their errors.
func stopChildServers(servers []*childServer) error {
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Go(func() {
			err := s.Stop()
			if err != nil && len(servers) > 1 {
				err = fmt.Errorf("node %d: %w", i, err)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Stop sends SIGTERM, waits for the server to exit (killing it after
// childStopTimeout) and removes its data directory. It returns an error if
// the server did not shut down cleanly. It is safe to call more than once.
func (s *childServer) Stop() error {
	s.stopOnce.Do(func() {
		var errs []error
		select {
		case <-s.exited:
		default:
			if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
				errs = append(errs, fmt.Errorf("signal server: %w", err))
			}
			timer := time.NewTimer(childStopTimeout)
			select {
			case <-s.exited:
			case <-timer.C:
				errs = append(errs, fmt.Errorf("server did not exit %s after SIGTERM; killed", childStopTimeout))
				if err := s.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
					errs = append(errs, fmt.Errorf("kill server: %w", err))
				}
				<-s.exited
			}
			timer.Stop()
		}
		if s.waitErr != nil {
			errs = append(errs, fmt.Errorf("server exit: %w; its log:\n%s", s.waitErr, s.log.Tail()))
		}
		if err := os.RemoveAll(s.dataDir); err != nil {
			errs = append(errs, fmt.Errorf("remove server data directory: %w", err))
		}
		s.stopErr = errors.Join(errs...)
	})
	return s.stopErr
}

// readyWatcher is the child's stderr: it looks for the "herald ready" line
// and keeps the last lines of the log for error messages. exec's copying
// goroutine writes to it while bench reads it.
type readyWatcher struct {
	ready chan struct{} // closed when the ready line was seen

	mu      sync.Mutex
	partial []byte   // guarded by mu; an unterminated last line
	tail    []string // guarded by mu; the last lines
	addr    string   // guarded by mu; set before ready is closed
}

const readyWatcherTail = 20

func newReadyWatcher() *readyWatcher {
	return &readyWatcher{ready: make(chan struct{})}
}

// Write implements io.Writer.
func (w *readyWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		line := w.partial[:i]
		if w.addr == "" {
			if addr, ok := parseReadyLine(line); ok {
				w.addr = addr
				close(w.ready)
			}
		}
		w.tail = append(w.tail, string(line))
		if len(w.tail) > readyWatcherTail {
			w.tail = w.tail[len(w.tail)-readyWatcherTail:]
		}
		w.partial = w.partial[i+1:]
	}
	if len(w.partial) > 64<<10 {
		w.partial = nil // a runaway line is not worth keeping
	}
	w.partial = append([]byte(nil), w.partial...) // don't pin the old buffer
	return len(p), nil
}

// Addr is the address from the ready line, once ready is closed.
func (w *readyWatcher) Addr() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.addr
}

// Tail returns the last lines logged.
func (w *readyWatcher) Tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(append(w.tail, string(w.partial)), "\n")
}

// parseReadyLine reports the address a `herald serve --log-format json` log
// line announces, if it is the "herald ready" line.
func parseReadyLine(line []byte) (addr string, ok bool) {
	var rec struct {
		Msg  string `json:"msg"`
		Addr string `json:"addr"`
	}
	if json.Unmarshal(line, &rec) != nil || rec.Msg != "herald ready" || rec.Addr == "" {
		return "", false
	}
	return rec.Addr, true
}
