package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/heraldtest"
)

// selfSigned writes a certificate for 127.0.0.1 and its key to dir and
// returns their paths and a pool that trusts the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "herald test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600))
	return certFile, keyFile, pool
}

// h2Client is an HTTP client that speaks only HTTP/2, over TLS trusting
// pool, or h2c with prior knowledge when pool is nil. dials counts the TCP
// connections it opens.
func h2Client(t *testing.T, pool *x509.CertPool, dials *atomic.Int64) *http.Client {
	t.Helper()
	var p http.Protocols
	if pool != nil {
		p.SetHTTP2(true)
	} else {
		p.SetUnencryptedHTTP2(true)
	}
	var d net.Dialer
	tr := &http.Transport{
		Protocols:       &p,
		TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return d.DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// TestHTTP2StreamsShareOneConnection serves HTTPS and runs two streams and
// the publishes that feed them over one HTTP/2 connection, as a browser
// does for every stream of a page.
func TestHTTP2StreamsShareOneConnection(t *testing.T) {
	t.Parallel()
	certFile, keyFile, pool := selfSigned(t)
	cfg := heraldtest.Config(t)
	cfg.TLSCert, cfg.TLSKey = certFile, keyFile
	cfg.CORSOrigins = []string{"https://app.example"}
	srv := heraldtest.Start(t, cfg)
	require.True(t, strings.HasPrefix(srv.URL, "https://"), srv.URL)

	var dials atomic.Int64
	hc := h2Client(t, pool, &dials)
	srv.UseHTTPClient(hc)
	app := srv.NewApp(t, "a", "b")
	full := app.Full
	tok, err := full.CreateToken(t.Context(), app.ID, []string{"a", "b"}, "")
	require.NoError(t, err)

	base := srv.URL + "/v1/apps/" + app.ID
	one := get(t, hc, base+"/topics/a/events?access_token="+url.QueryEscape(tok.Token), http.Header{"Origin": {"https://app.example"}})
	both := get(t, hc, base+"/events?topic=a&topic=b", http.Header{"Authorization": {"Bearer " + app.SubscribeKey}})
	for _, r := range []*http.Response{one, both} {
		require.Equal(t, http.StatusOK, r.StatusCode)
		require.Equal(t, 2, r.ProtoMajor, "HTTP/2 over TLS")
		require.Equal(t, "text/event-stream; charset=utf-8", r.Header.Get("Content-Type"))
	}
	require.Equal(t, "https://app.example", one.Header.Get("Access-Control-Allow-Origin"), "CORS on an HTTP/2 stream")
	waitSubscribersWith(t, full, app.ID, "a", 2)

	// The first frames were flushed before any event: the streams are open.
	oneR, bothR := client.NewFrameReader(one.Body), client.NewFrameReader(both.Body)
	_, err = full.Publish(t.Context(), app.ID, "a", []byte(`"to a"`))
	require.NoError(t, err)
	_, err = full.Publish(t.Context(), app.ID, "b", []byte(`"to b"`))
	require.NoError(t, err)
	require.Contains(t, nextData(t, oneR).Data, `"to a"`)
	require.Contains(t, nextData(t, bothR).Data, `"to a"`)
	f := nextData(t, bothR)
	require.Contains(t, f.Data, `"to b"`)
	require.Equal(t, "a:1,b:1", f.ID)
	require.Equal(t, int64(1), dials.Load(), "every request shared one connection")

	// A stream ends cleanly on HTTP/2 too: END_STREAM, not a reset.
	require.NoError(t, full.DeleteTopic(t.Context(), app.ID, "a"))
	require.Equal(t, "topic_deleted", nextData(t, oneR).Type)
	_, err = oneR.Next()
	require.ErrorIs(t, err, io.EOF)
	require.Equal(t, "topic_deleted", nextData(t, bothR).Type)

	// And shutdown ends the rest without waiting out its timeout.
	start := time.Now()
	require.NoError(t, srv.Stop())
	require.Less(t, time.Since(start), cfg.ShutdownTimeout)
	_, err = bothR.Next()
	require.Error(t, err)
	require.Equal(t, int64(1), dials.Load())
}

func TestHTTP2TokenExpiryEndsStream(t *testing.T) {
	t.Parallel()
	certFile, keyFile, pool := selfSigned(t)
	cfg := heraldtest.Config(t)
	cfg.TLSCert, cfg.TLSKey = certFile, keyFile
	srv := heraldtest.Start(t, cfg)
	var dials atomic.Int64
	hc := h2Client(t, pool, &dials)
	srv.UseHTTPClient(hc)
	app := srv.NewApp(t, "a")
	// Expiry is truncated to the JWT's whole second, so a "1s" token may
	// live for a millisecond: on a busy machine it expired before the
	// stream was set up and the request got a 401. 5s leaves at least 4s.
	tok, err := srv.Admin.CreateToken(t.Context(), app.ID, []string{"a"}, "5s")
	require.NoError(t, err)
	resp := get(t, hc, srv.URL+"/v1/apps/"+app.ID+"/topics/a/events?access_token="+url.QueryEscape(tok.Token), nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, 2, resp.ProtoMajor)
	r := client.NewFrameReader(resp.Body)
	f := nextData(t, r)
	require.Equal(t, "token_expired", f.Type)
	require.False(t, time.Now().Before(tok.ExpiresAt), "not before the expiry")
	require.Contains(t, f.Data, tok.ExpiresAt.UTC().Format(time.RFC3339), "the expiry the server acted on is the token's")
	_, err = r.Next()
	require.ErrorIs(t, err, io.EOF)
}

// TestH2CPriorKnowledge speaks HTTP/2 in the clear to a server without TLS,
// which still serves HTTP/1.1 to everyone else.
func TestH2CPriorKnowledge(t *testing.T) {
	t.Parallel()
	srv := heraldtest.StartDefault(t)
	app := srv.NewApp(t, "t")
	var dials atomic.Int64
	hc := h2Client(t, nil, &dials)
	resp := get(t, hc, srv.URL+"/v1/apps/"+app.ID+"/topics/t/events", http.Header{"Authorization": {"Bearer " + app.SubscribeKey}})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, 2, resp.ProtoMajor, "h2c")
	full := client.New(srv.URL, app.FullKey, client.WithHTTPClient(hc))
	waitSubscribersWith(t, full, app.ID, "t", 1)
	_, err := full.Publish(t.Context(), app.ID, "t", []byte(`"over h2c"`))
	require.NoError(t, err)
	require.Contains(t, nextData(t, client.NewFrameReader(resp.Body)).Data, `"over h2c"`)
	require.Equal(t, int64(1), dials.Load())

	h1 := get(t, http.DefaultClient, srv.URL+"/healthz", nil)
	require.Equal(t, 1, h1.ProtoMajor, "HTTP/1.1 still served")
}

// TestHTTP2IdleStreamOutlivesItsWriteTimeout: a stream that is quiet for
// longer than the write timeout is not a slow consumer. On HTTP/2 a write
// deadline left standing after a write would reset the stream when it
// passes, with no write pending, and the next event would never arrive.
func TestHTTP2IdleStreamOutlivesItsWriteTimeout(t *testing.T) {
	t.Parallel()
	cfg := heraldtest.Config(t)
	cfg.WriteTimeout = 200 * time.Millisecond
	cfg.Heartbeat = -1 // nothing is written while the topic is quiet
	srv := heraldtest.Start(t, cfg)
	app := srv.NewApp(t, "t")

	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p}
	defer tr.CloseIdleConnections()
	resp := get(t, &http.Client{Transport: tr}, srv.URL+"/v1/apps/"+app.ID+"/topics/t/events",
		http.Header{"Authorization": {"Bearer " + app.SubscribeKey}})
	require.Equal(t, 2, resp.ProtoMajor)
	r := client.NewFrameReader(resp.Body)
	f, err := r.Next()
	require.NoError(t, err)
	require.Equal(t, "start", f.Type)
	waitSubscribers(t, app, "t", 1)

	// The idle time is the subject of the test: nothing can be waited on
	// instead, since what must not happen is a timer firing in the server.
	time.Sleep(5 * cfg.WriteTimeout)
	_, err = app.Full.Publish(t.Context(), app.ID, "t", []byte(`"after the quiet"`))
	require.NoError(t, err)
	f = nextData(t, r)
	require.Contains(t, f.Data, "after the quiet")
	require.Contains(t, scrape(t, srv.URL), "herald_slow_consumer_disconnects_total 0")
}

// TestHTTP2SlowConsumerIsCutOff checks the per-write deadline on the
// non-hijacked path: an HTTP/2 client whose flow-control window is full
// blocks the server's write, and the deadline must end that stream.
func TestHTTP2SlowConsumerIsCutOff(t *testing.T) {
	t.Parallel()
	cfg := heraldtest.Config(t)
	cfg.BufferSize = 4
	cfg.WriteTimeout = 300 * time.Millisecond
	srv := heraldtest.Start(t, cfg)
	app := srv.NewApp(t, "t")

	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p, HTTP2: &http.HTTP2Config{
		MaxReceiveBufferPerStream: 64 << 10, MaxReceiveBufferPerConnection: 64 << 10,
	}}
	defer tr.CloseIdleConnections()
	resp := get(t, &http.Client{Transport: tr}, srv.URL+"/v1/apps/"+app.ID+"/topics/t/events",
		http.Header{"Authorization": {"Bearer " + app.SubscribeKey}})
	require.Equal(t, 2, resp.ProtoMajor)
	waitSubscribers(t, app, "t", 1)

	// Never read the body: publish until the server gives up on it.
	requireCutOffWhileFlooding(t, srv, app)
}

func waitSubscribersWith(t *testing.T, c *client.Client, app, topic string, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		ts, err := c.ListTopics(t.Context(), app)
		if err != nil {
			return false
		}
		for _, tp := range ts {
			if tp.Name == topic {
				return tp.Subscribers == n
			}
		}
		return false
	}, 5*time.Second, 5*time.Millisecond)
}
