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
// arrive. Everything else passes through unchanged.
type Proxy struct {
	target string
	ln     net.Listener

	mu       sync.Mutex
	conns    map[*proxyConn]struct{} // guarded by mu
	refusing bool                    // guarded by mu
	dropNote bool                    // guarded by mu
	wg       sync.WaitGroup
}

type proxyConn struct {
	client, server net.Conn
	// listener: the client sent LISTEN on this connection.
	mu       sync.Mutex
	listener bool // guarded by mu
	frozen   bool // guarded by mu
	thaw     *sync.Cond
}

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

// upstream copies client to server, noting a LISTEN.
func (p *Proxy) upstream(pc *proxyConn) {
	defer p.forget(pc)
	buf := make([]byte, 32<<10)
	for {
		n, err := pc.client.Read(buf)
		if n > 0 {
			if bytes.Contains(bytes.ToUpper(buf[:n]), []byte("LISTEN ")) {
				pc.mu.Lock()
				pc.listener = true
				pc.mu.Unlock()
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
		if !pc.wait() {
			return
		}
		if _, err := pc.client.Write(append(head[:], body...)); err != nil {
			return
		}
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
