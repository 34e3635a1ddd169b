package hostile_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/heraldtest"
)

// TestMalformedAndSmugglingShapesAreRefused sends requests whose framing an
// attacker would use to smuggle a second request past a proxy, or to make
// the server hold huge headers: each is refused on its own connection, no
// request hidden inside one is served, and nothing is stored.
func TestMalformedAndSmugglingShapesAreRefused(t *testing.T) {
	t.Parallel()
	srv := heraldtest.StartDefault(t)
	app := srv.NewApp(t, "t")
	pub := fmt.Sprintf("/v1/apps/%s/topics/t/messages", app.ID)
	auth := "Authorization: Bearer " + app.FullKey + "\r\n"
	t.Cleanup(func() { // after every subtest
		requireHealthy(t, srv)
		requireHistory(t, app, "t")
	})
	smuggled := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: 10\r\n\r\n\"smuggled\"", pub, auth)

	for _, tc := range []struct {
		name string
		raw  string
		want []int // acceptable statuses of the one answer
	}{
		{"Content-Length and Transfer-Encoding", fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n%s", pub, auth, smuggled),
			[]int{http.StatusBadRequest}},
		{"two different Content-Lengths", fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: 3\r\nContent-Length: 100\r\n\r\n\"a\"%s", pub, auth, smuggled),
			[]int{http.StatusBadRequest}},
		{"an obfuscated Transfer-Encoding", fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\n%sTransfer-Encoding: xchunked\r\nContent-Length: 3\r\n\r\n\"a\"", pub, auth),
			[]int{http.StatusBadRequest, http.StatusNotImplemented}},
		{"a header line of 2 MB", fmt.Sprintf("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", 2<<20)),
			[]int{http.StatusRequestHeaderFieldsTooLarge}},
		{"a URL of 2 MB", fmt.Sprintf("GET /healthz?%s HTTP/1.1\r\nHost: x\r\n\r\n", strings.Repeat("a", 2<<20)),
			[]int{http.StatusRequestHeaderFieldsTooLarge, http.StatusRequestURITooLong}},
		{"no Host", "GET /healthz HTTP/1.1\r\n\r\n", []int{http.StatusBadRequest}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := net.Dial("tcp", srv.Addr())
			require.NoError(t, err)
			defer c.Close()
			// The server may answer and close before it has read all of a
			// huge request: a failed write is part of being refused.
			go func() { _, _ = c.Write([]byte(tc.raw)) }()
			require.NoError(t, c.SetReadDeadline(time.Now().Add(patience)))
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			require.NoError(t, err)
			resp.Body.Close()
			require.Contains(t, tc.want, resp.StatusCode)
			// Nothing more comes: no second answer to a hidden request.
			_, err = http.ReadResponse(br, nil)
			require.Error(t, err, "a second answer means a smuggled request was served")
		})
	}
}

// TestH2CStreamResetsGiveBackTheirSlots opens many event streams over one
// h2c connection and cancels each as soon as it is sent (RST_STREAM, the
// "rapid reset" shape), against a server allowing 8 connections (7
// streams). Meanwhile /healthz answers; afterwards every stream slot is
// free again (7 streams open), and a publish reaches them.
func TestH2CStreamResetsGiveBackTheirSlots(t *testing.T) {
	t.Parallel()
	cfg := heraldtest.Config(t)
	cfg.MaxConnections = 8
	cfg.Heartbeat = 100 * time.Millisecond
	srv := heraldtest.Start(t, cfg)
	app := srv.NewApp(t, "t")
	url := srv.URL + "/v1/apps/" + app.ID + "/topics/t/events"

	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p}
	defer tr.CloseIdleConnections()
	h2c := &http.Client{Transport: tr}
	var wg sync.WaitGroup
	for range 300 {
		wg.Go(func() {
			ctx, cancel := context.WithCancel(t.Context())
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				cancel()
				return
			}
			req.Header.Set("Authorization", "Bearer "+app.SubscribeKey)
			go cancel() // reset as soon as it is on the wire, or before
			if resp, err := h2c.Do(req); err == nil {
				resp.Body.Close()
			}
		})
	}
	requireHealthy(t, srv)
	wg.Wait()

	// Every slot comes back: the 7 streams the node allows open, over h2c.
	deadline := time.Now().Add(patience)
	var open []*http.Response
	defer func() {
		for _, r := range open {
			r.Body.Close()
		}
	}()
	// A fresh connection: the server may have ended the attacking one
	// (net/http counts rapid resets and sends GOAWAY).
	tr2 := &http.Transport{Protocols: &p}
	defer tr2.CloseIdleConnections()
	h2c = &http.Client{Transport: tr2}
	for len(open) < 7 {
		require.True(t, time.Now().Before(deadline), "stream slots were not given back after the resets: %d of 7", len(open))
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+app.SubscribeKey)
		resp, err := h2c.Do(req)
		if err != nil {
			continue // a connection still being cleared away
		}
		if resp.StatusCode == http.StatusOK {
			require.Equal(t, 2, resp.ProtoMajor)
			open = append(open, resp)
			continue
		}
		resp.Body.Close()
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	}
	id := requirePublishes(t, app, "t", `"after the resets"`)
	for _, r := range open {
		requireFrameWithID(t, r, id)
	}
}
