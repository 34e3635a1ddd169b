package pgtest

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
)

// Proxy is a TCP proxy in front of Postgres that injects the network faults
// a real server cannot produce on demand: connections cut and refused, a
// connection that stays open but goes silent, notifications that never
// arrive, a connection lost at the moment its client commits. Everything
// else passes through unchanged.
type Proxy struct {
	target string
	ln     net.Listener

	mu       sync.Mutex
	conns    map[*proxyConn]struct{} // guarded by mu
	refusing bool                    // guarded by mu
	dropNote bool                    // guarded by mu
	// commit is the cut armed for a COMMIT, nil when none. Guarded by mu.
	commit *armedCut
	wg     sync.WaitGroup
}

type proxyConn struct {
	client, server net.Conn
	mu             sync.Mutex
	// listener: the client sent LISTEN on this connection.
	listener bool // guarded by mu
	frozen   bool // guarded by mu
	// marked: since its last COMMIT, the client sent the armed cut's
	// marker on this connection.
	marked bool // guarded by mu
	// severed: a commit cut this connection; nothing the server sends
	// reaches the client any more.
	severed bool // guarded by mu
	thaw    *sync.Cond
}

// CommitCut is what the proxy does to the COMMIT it is armed for.
type CommitCut int

const (
	// CutAfterCommit forwards the COMMIT, then drops the connection before
	// the answer comes back: the server commits, the client never hears.
	CutAfterCommit CommitCut = iota + 1
	// CutBeforeCommit drops the connection instead of forwarding the
	// COMMIT: the server sees the client go and rolls back.
	CutBeforeCommit
	// BlackoutAfterCommit is CutAfterCommit, and then the proxy cuts every
	// other connection and refuses new ones until Refuse(false): the
	// client cannot ask what became of its commit.
	BlackoutAfterCommit
)

// armedCut is a CommitCut waiting for its COMMIT.
type armedCut struct {
	cut     CommitCut
	marker  []byte
	tripped chan struct{}
}

// commitQuery is what pgx sends for Tx.Commit: a simple Query message
// whose text is "commit".
const commitQuery = "commit\x00"

// NewProxy starts a proxy to the server of dbURL on 127.0.0.1 and stops it
// when the test ends.
func NewProxy(tb testing.TB, dbURL string) *Proxy {
	tb.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		tb.Fatalf("pgtest: proxy: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("pgtest: proxy: %v", err)
	}
	p := &Proxy{target: u.Host, ln: ln, conns: make(map[*proxyConn]struct{})}
	p.wg.Go(p.accept)
	tb.Cleanup(func() {
		ln.Close()
		p.Cut()
		p.wg.Wait()
	})
	return p
}

// URL is dbURL with its host replaced by the proxy's address.
func (p *Proxy) URL(dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		panic(err)
	}
	u.Host = p.ln.Addr().String()
	return u.String()
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refusing := p.refusing
		p.mu.Unlock()
		if refusing {
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		pc := &proxyConn{client: c, server: s}
		pc.thaw = sync.NewCond(&pc.mu)
		p.mu.Lock()
		p.conns[pc] = struct{}{}
		p.mu.Unlock()
		p.wg.Go(func() { p.upstream(pc) })
		p.wg.Go(func() { p.downstream(pc) })
	}
}

// upstream copies client to server, noting a LISTEN and cutting an armed
// COMMIT.
func (p *Proxy) upstream(pc *proxyConn) {
	keepServer := false // for downstream to forget, once the server answers
	defer func() {
		if !keepServer {
			p.forget(pc)
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := pc.client.Read(buf)
		if n > 0 {
			if bytes.Contains(bytes.ToUpper(buf[:n]), []byte("LISTEN ")) {
				pc.mu.Lock()
				pc.listener = true
				pc.mu.Unlock()
			}
			if a := p.takeCommit(pc, buf[:n]); a != nil {
				p.cutCommit(pc, a, buf[:n])
				keepServer = a.cut != CutBeforeCommit
				return
			}
			if !pc.wait() {
				return
			}
			if _, err := pc.server.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// downstream copies server to client message by message, so that
// notifications can be dropped.
func (p *Proxy) downstream(pc *proxyConn) {
	defer p.forget(pc)
	var head [5]byte
	for {
		if _, err := io.ReadFull(pc.server, head[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(head[1:])) - 4
		if n < 0 {
			return
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(pc.server, body); err != nil {
			return
		}
		p.mu.Lock()
		drop := p.dropNote && head[0] == 'A' // NotificationResponse
		p.mu.Unlock()
		if drop {
			continue
		}
		if !pc.wait() || !pc.send(append(head[:], body...)) {
			return
		}
	}
}

// send passes b to the client unless a commit cut severed the connection.
// The write is made under the lock that cutCommit takes to sever, so that
// the server's answer to a forwarded COMMIT can never slip through to the
// client between the COMMIT and the cut.
func (pc *proxyConn) send(b []byte) bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.severed {
		return false
	}
	_, err := pc.client.Write(b)
	return err == nil
}

// ArmCommit makes the proxy apply c to the next COMMIT sent on a
// connection that sent marker (a query's text, or a parameter such as a
// message body: pgx sends those on every execution) since its previous
// COMMIT; an empty marker matches any. It returns a channel closed once
// the cut happened. The proxy looks at what each read of the client
// brings, without parsing the protocol: pgx writes a COMMIT, and a query
// with its parameters, in one write, which arrives in one read in
// practice.
func (p *Proxy) ArmCommit(c CommitCut, marker string) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.commit = &armedCut{cut: c, marker: []byte(marker), tripped: make(chan struct{})}
	return p.commit.tripped
}

// takeCommit returns the armed cut if chunk, sent by pc's client, is the
// COMMIT it waits for, disarming it.
func (p *Proxy) takeCommit(pc *proxyConn, chunk []byte) *armedCut {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.commit
	if a == nil {
		return nil
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if bytes.Contains(chunk, a.marker) {
		pc.marked = true
	}
	if !bytes.Contains(chunk, []byte(commitQuery)) {
		return nil
	}
	marked := pc.marked
	pc.marked = false
	if !marked {
		return nil
	}
	p.commit = nil
	if a.cut == BlackoutAfterCommit {
		p.refusing = true
	}
	return a
}

// cutCommit applies a to chunk, pc's COMMIT.
func (p *Proxy) cutCommit(pc *proxyConn, a *armedCut, chunk []byte) {
	// Severed before the COMMIT goes on: a server that answers at once
	// would otherwise race the cut, and the client would hear that its
	// commit succeeded (TestPublishCommitUnknown got a 202 that way).
	pc.mu.Lock()
	pc.severed = true
	pc.mu.Unlock()
	if a.cut != CutBeforeCommit {
		_, _ = pc.server.Write(chunk)
	}
	// tripped is closed, and a blackout cuts the other connections (so
	// that the client has no way left to the server), before the client
	// side is closed: a client that learns of the cut at once and asks on
	// another connection must not find a proxy that has not tripped yet.
	if a.cut == BlackoutAfterCommit {
		p.each(func(o *proxyConn) {
			if o != pc {
				o.client.Close()
				o.server.Close()
			}
		})
	}
	close(a.tripped)
	// Whatever the server answers finds no one to read it. The server side
	// of a forwarded COMMIT stays open until the server answers (downstream
	// then fails to pass it on and forgets the connection), so that the
	// server surely reads it.
	pc.client.Close()
	if a.cut == CutBeforeCommit {
		pc.server.Close()
	}
}

// wait blocks while the connection is frozen; false means it was closed.
func (pc *proxyConn) wait() bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	for pc.frozen {
		pc.thaw.Wait()
	}
	return true
}

func (p *Proxy) forget(pc *proxyConn) {
	pc.client.Close()
	pc.server.Close()
	p.mu.Lock()
	delete(p.conns, pc)
	p.mu.Unlock()
}

// Cut closes every open connection.
func (p *Proxy) Cut() {
	p.each(func(pc *proxyConn) {
		pc.mu.Lock()
		pc.frozen = false
		pc.thaw.Broadcast()
		pc.mu.Unlock()
		pc.client.Close()
		pc.server.Close()
	})
}

// Refuse makes the proxy close new connections at once (true) or pass them
// again (false).
func (p *Proxy) Refuse(refuse bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refusing = refuse
}

// FreezeListeners stops all traffic on the connections that sent LISTEN,
// leaving them open: the listener neither hears nor learns it is cut off.
func (p *Proxy) FreezeListeners() {
	p.each(func(pc *proxyConn) {
		pc.mu.Lock()
		defer pc.mu.Unlock()
		if pc.listener {
			pc.frozen = true
		}
	})
}

// DropNotifications makes the proxy swallow every notification, as a
// transaction-pooling proxy does to a client that LISTENs.
func (p *Proxy) DropNotifications(drop bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dropNote = drop
}

func (p *Proxy) each(fn func(*proxyConn)) {
	p.mu.Lock()
	conns := make([]*proxyConn, 0, len(p.conns))
	for pc := range p.conns {
		conns = append(conns, pc)
	}
	p.mu.Unlock()
	for _, pc := range conns {
		fn(pc)
	}
}
