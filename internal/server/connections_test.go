package server_test

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/heraldtest"
	"github.com/heraldhq/herald/internal/hostile"
)

// TestStalledBodyOverTLSClosedToMakeRoomIsAnswered is the hostile suite's
// TestStalledBodyClosedToMakeRoomIsAnswered over HTTPS (HTTP/1.1): the
// 408 goes through the TLS connection, which is then closed under it.
// The server may take the connection for /healthz before it has read the
// stalled request's headers; it is then closed unanswered, and the test
// tries again.
func TestStalledBodyOverTLSClosedToMakeRoomIsAnswered(t *testing.T) {
	t.Parallel()
	certFile, keyFile, pool := selfSigned(t)
	cfg := heraldtest.Config(t)
	cfg.TLSCert, cfg.TLSKey = certFile, keyFile
	cfg.MaxConnections = 1
	cfg.ReadTimeout = time.Hour
	srv := heraldtest.Start(t, cfg)
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true,
	}}
	srv.UseHTTPClient(hc)
	app := srv.NewApp(t, "t")
	tlsConf := &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}}

	for attempt := 1; ; attempt++ {
		c, err := tls.Dial("tcp", srv.Addr(), tlsConf)
		require.NoError(t, err)
		defer func() { _ = c.Close() }()
		_, err = fmt.Fprintf(c, "POST /v1/apps/%s/topics/t/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"+
			"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{", app.ID, app.FullKey)
		require.NoError(t, err)

		resp, err := hc.Get(srv.URL + "/healthz") // the one connection: the stalled body's is closed for it
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)

		resp, body, closed, err := hostile.ReadAnswer(c, time.Now().Add(time.Minute))
		require.NotErrorIs(t, err, os.ErrDeadlineExceeded, "the stalled body was not closed to make room")
		if err != nil {
			require.Less(t, attempt, 50, "never answered: %v", err)
			continue
		}
		require.Equal(t, http.StatusRequestTimeout, resp.StatusCode)
		require.True(t, resp.Close, "the answer says Connection: close")
		require.True(t, closed, "the server closed the connection")
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		require.NoError(t, json.Unmarshal(body, &e), "%s", body)
		require.Equal(t, "request_timeout", e.Error.Code)
		t.Logf("answered at attempt %d", attempt)
		return
	}
}
