// Package natstest gives tests a NATS server: the shared one every machine
// and CI run on 127.0.0.1:4222 (HERALD_TEST_NATS_URL overrides it), or one of
// their own on a free port, for tests that stop and restart it. A server
// that cannot be reached fails the test, saying how to start it: these
// tests are never skipped.
package natstest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

const howToStart = "start one with `nats-server -a 127.0.0.1 -p 4222` (Debian: apt-get install nats-server), or set HERALD_TEST_NATS_URL"

// URL is the shared NATS server's URL, after checking it answers.
func URL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv("HERALD_TEST_NATS_URL")
	if u == "" {
		u = "nats://127.0.0.1:4222"
	}
	nc, err := nats.Connect(u, nats.Timeout(5*time.Second))
	if err != nil {
		tb.Fatalf("natstest: connect to %s: %v\n%s", u, err, howToStart)
	}
	nc.Close()
	return u
}

// Prefix is a subject prefix of the test's own, so that tests sharing a
// server (and app names) do not hear each other.
func Prefix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "herald_t_" + hex.EncodeToString(b[:])
}

// Server is a nats-server process of one test's own.
type Server struct {
	tb   testing.TB
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

// Start runs a nats-server on a free loopback port until the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("natstest: find a free port: %v", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	s := &Server{tb: tb, port: port}
	s.Restart()
	tb.Cleanup(s.Stop)
	return s
}

// URL is the server's URL.
func (s *Server) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.port) }

// Stop kills the server and waits for it to exit. It is a no-op when the
// server is stopped.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Restart starts the server again on its port (or for the first time) and
// waits until it answers.
func (s *Server) Restart() {
	s.tb.Helper()
	bin := os.Getenv("HERALD_NATS_SERVER")
	if bin == "" {
		if p, err := exec.LookPath("nats-server"); err == nil {
			bin = p
		} else {
			bin = "/usr/sbin/nats-server"
		}
	}
	cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", strconv.Itoa(s.port))
	if err := cmd.Start(); err != nil {
		s.tb.Fatalf("natstest: start %s: %v\n%s", bin, err, howToStart)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func(done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(s.done)
	deadline := time.Now().Add(15 * time.Second)
	for {
		nc, err := nats.Connect(s.URL(), nats.Timeout(time.Second))
		if err == nil {
			nc.Close()
			return
		}
		if time.Now().After(deadline) {
			s.tb.Fatalf("natstest: %s did not answer on %s: %v", bin, s.URL(), err)
		}
		time.Sleep(20 * time.Millisecond) // waiting for a process to listen; no event to wait on
	}
}
