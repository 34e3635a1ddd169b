package postgres_test

import (
	"bytes"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// cut says what a faultProxy does when a client sends COMMIT.
type cut int

const (
	// passCommit forwards everything.
	passCommit cut = iota
	// cutAfterCommit forwards the COMMIT, then drops the connection before
	// the answer comes back: the server commits, the client never hears.
	cutAfterCommit
	// cutBeforeCommit drops the connection instead of forwarding the
	// COMMIT: the server sees the client go and rolls back.
	cutBeforeCommit
	// blackoutAfterCommit is cutAfterCommit, and then the proxy refuses
	// every new connection until restore: the client cannot ask what
	// became of its commit.
	blackoutAfterCommit
)

// faultProxy is a TCP proxy between a store and the real Postgres that can
// lose a connection at the moment a client commits, which is otherwise
// impossible to time from a test. It reads the protocol no further than
// looking for the simple query pgx sends for Tx.Commit.
type faultProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	// mu guards the fields below.
	mu sync.Mutex
	// arm is what to do at the next COMMIT; it goes back to passCommit
	// once done.
	arm cut
	// refusing makes the proxy close new connections at once.
	refusing bool
	// tripped is closed when the armed cut happened.
	tripped chan struct{}
	// conns are the open connections, both sides, closed by Close.
	conns  map[net.Conn]struct{}
	closed bool
}

// commitQuery is what pgx sends for Tx.Commit: a simple Query message
// whose text is "commit".
const commitQuery = "commit\x00"

// newFaultProxy starts a proxy to the server of dbURL and returns it with
// dbURL pointed at it. The proxy stops when t ends.
func newFaultProxy(t *testing.T, dbURL string) (*faultProxy, string) {
	t.Helper()
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &faultProxy{ln: ln, target: u.Host, conns: make(map[net.Conn]struct{}), tripped: make(chan struct{})}
	p.wg.Go(p.accept)
	t.Cleanup(p.Close)
	u.Host = ln.Addr().String()
	return p, u.String()
}

// Arm makes the proxy apply c to the next COMMIT any client sends, and
// returns a channel closed once it did.
func (p *faultProxy) Arm(c cut) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.arm = c
	p.tripped = make(chan struct{})
	return p.tripped
}

// Restore ends a blackout.
func (p *faultProxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refusing = false
}

// Close stops accepting, closes every connection and waits for the
// proxy's goroutines.
func (p *faultProxy) Close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	_ = p.ln.Close()
	p.wg.Wait()
}

// track records c as open, or returns false if the proxy is closed.
func (p *faultProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *faultProxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.mu.Lock()
		refusing := p.refusing
		p.mu.Unlock()
		if refusing || !p.track(client) {
			_ = client.Close()
			continue
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil || !p.track(server) {
			_ = client.Close()
			if server != nil {
				_ = server.Close()
			}
			continue
		}
		p.wg.Go(func() { p.toServer(client, server) })
		p.wg.Go(func() {
			// The answers go back as they are; when either side goes,
			// both do.
			_, _ = io.Copy(client, server)
			_ = client.Close()
			_ = server.Close()
		})
	}
}

// toServer copies what the client sends to the server, applying the armed
// cut to a COMMIT. pgx writes each Query message with one write, so a
// COMMIT arrives whole in one read, in practice.
func (p *faultProxy) toServer(client, server net.Conn) {
	buf := make([]byte, 64<<10)
	for {
		n, err := client.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if act := p.take(chunk); act != passCommit {
				if act != cutBeforeCommit {
					_, _ = server.Write(chunk)
				}
				// tripped is closed, and a blackout cuts the pool's idle
				// connections (so that the client has no way left to the
				// server), before the client side is closed: a client that
				// learns of the cut at once and asks the server on another
				// connection must not see a proxy that has not tripped yet.
				p.mu.Lock()
				if act == blackoutAfterCommit {
					for c := range p.conns {
						if c != server && c != client {
							_ = c.Close()
						}
					}
				}
				close(p.tripped)
				p.mu.Unlock()
				// Closing the client side now: whatever the server answers
				// finds no one to read it. The server side of a forwarded
				// COMMIT stays open until the server answers, so that the
				// server surely reads it.
				_ = client.Close()
				if act == cutBeforeCommit {
					_ = server.Close()
				}
				return
			}
			if _, err := server.Write(chunk); err != nil {
				_ = client.Close()
				return
			}
		}
		if err != nil {
			// The client went, or Close closed it.
			_ = server.Close()
			return
		}
	}
}

// take returns the cut to apply to chunk, disarming the proxy if there is
// one.
func (p *faultProxy) take(chunk []byte) cut {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.arm == passCommit || !bytes.Contains(chunk, []byte(commitQuery)) {
		return passCommit
	}
	act := p.arm
	p.arm = passCommit
	if act == blackoutAfterCommit {
		p.refusing = true
	}
	return act
}
