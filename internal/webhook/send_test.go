package webhook_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/event"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/webhook"
)

// loopback allows webhooks to this host, as every test here needs.
func loopback() []netip.Prefix { return []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} }

// hit is one request a receiver got.
type hit struct {
	Header http.Header
	Body   []byte
	At     time.Time
}

// receiver is a real HTTP server on loopback that records what it gets and
// answers with handle (200 when nil).
type receiver struct {
	*httptest.Server
	hits chan hit
}

func newReceiver(t *testing.T, handle http.HandlerFunc) *receiver {
	t.Helper()
	r := &receiver{hits: make(chan hit, 10000)}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.hits <- hit{Header: req.Header.Clone(), Body: body, At: time.Now()}
		if handle == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		handle(w, req)
	}))
	t.Cleanup(func() {
		// Handlers a test left waiting end with their connections.
		r.CloseClientConnections()
		r.Close()
	})
	return r
}

// next waits for the receiver's next request.
func (r *receiver) next(t *testing.T) hit {
	t.Helper()
	select {
	case h := <-r.hits:
		return h
	case <-time.After(10 * time.Second):
		t.Fatal("the receiver got no request")
		return hit{}
	}
}

func newSender(t *testing.T, opts webhook.SenderOptions) *webhook.Sender {
	t.Helper()
	if opts.Guard == nil {
		opts.Guard = webhook.NewGuard(loopback())
	}
	s := webhook.NewSender(opts)
	t.Cleanup(s.Close)
	return s
}

func delivery(url string) *store.Delivery {
	return &store.Delivery{
		ID: "msg_2b8f0c", TriggerID: "trg_1", AppID: "app", Topic: "orders", MessageID: 42,
		Body: json.RawMessage(`{"total":12.5,"note":"line\nbreak"}`), PublishedAt: time.Date(2026, 11, 28, 3, 25, 12, 123456000, time.UTC),
		URL: url, Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", Attempts: 1,
	}
}

func TestSendSignsTheSSEDataWithStandardWebhooks(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, nil)
	d := delivery(rcv.URL + "/hook")
	res := newSender(t, webhook.SenderOptions{}).Send(t.Context(), d)
	require.NoError(t, res.Err)
	require.True(t, res.Delivered())
	require.Equal(t, http.StatusNoContent, res.Status)

	h := rcv.next(t)
	wh, err := standardwebhooks.NewWebhook(d.Secret)
	require.NoError(t, err)
	require.NoError(t, wh.Verify(h.Body, h.Header), "the official library verifies it")
	require.Equal(t, d.ID, h.Header.Get("webhook-id"))
	ts, err := strconv.ParseInt(h.Header.Get("webhook-timestamp"), 10, 64)
	require.NoError(t, err)
	require.InDelta(t, time.Now().Unix(), ts, 5)
	require.Equal(t, "application/json", h.Header.Get("Content-Type"))
	require.Equal(t, "Herald-Webhooks/1", h.Header.Get("User-Agent"))

	// The body is the data line of the message's SSE frame, byte for byte.
	frame := event.EncodeFrame(&event.Event{Topic: d.Topic, ID: d.MessageID, Message: d.Body, PublishedAt: d.PublishedAt})
	f, err := client.NewFrameReader(bytes.NewReader(frame)).Next()
	require.NoError(t, err)
	require.Equal(t, f.Data, string(h.Body))
	require.Equal(t, webhook.Body(d), h.Body)
}

func TestSendTimestampIsFreshPerAttempt(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, nil)
	var now atomic.Int64
	now.Store(1_800_000_000)
	s := newSender(t, webhook.SenderOptions{NowFunc: func() time.Time { return time.Unix(now.Load(), 0) }})
	d := delivery(rcv.URL)
	require.NoError(t, s.Send(t.Context(), d).Err)
	now.Add(300)
	require.NoError(t, s.Send(t.Context(), d).Err)
	a, b := rcv.next(t), rcv.next(t)
	require.Equal(t, "1800000000", a.Header.Get("webhook-timestamp"))
	require.Equal(t, "1800000300", b.Header.Get("webhook-timestamp"))
	require.Equal(t, a.Header.Get("webhook-id"), b.Header.Get("webhook-id"))
	require.NotEqual(t, a.Header.Get("webhook-signature"), b.Header.Get("webhook-signature"))
	wh, err := standardwebhooks.NewWebhook(d.Secret)
	require.NoError(t, err)
	require.NoError(t, wh.VerifyIgnoringTimestamp(b.Body, b.Header))
}

func TestSendDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	target := newReceiver(t, nil)
	rcv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/elsewhere", http.StatusTemporaryRedirect)
	})
	res := newSender(t, webhook.SenderOptions{}).Send(t.Context(), delivery(rcv.URL))
	require.Equal(t, http.StatusTemporaryRedirect, res.Status)
	require.ErrorContains(t, res.Err, "redirects are not followed")
	require.ErrorContains(t, res.Err, target.URL+"/elsewhere")
	rcv.next(t)
	require.Empty(t, target.hits, "the redirect's target got nothing")
}

// TestSendReadsAtMost64KiB answers with a body that never ends: only an
// attempt that stops reading can finish, and it does, long before its
// timeout.
func TestSendReadsAtMost64KiB(t *testing.T) {
	t.Parallel()
	endless := func(status int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
			chunk := bytes.Repeat([]byte("x"), 4096)
			for r.Context().Err() == nil {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}
	}
	s := newSender(t, webhook.SenderOptions{Timeout: time.Minute})
	for _, status := range []int{http.StatusInternalServerError, http.StatusOK} {
		rcv := newReceiver(t, endless(status))
		start := time.Now()
		res := s.Send(t.Context(), delivery(rcv.URL))
		require.Less(t, time.Since(start), 30*time.Second, "the attempt stopped reading")
		require.Equal(t, status, res.Status)
		if status == http.StatusOK {
			require.NoError(t, res.Err)
			continue
		}
		require.Error(t, res.Err)
		require.NotContains(t, res.Err.Error(), "timed out")
		require.LessOrEqual(t, len(res.Err.Error()), webhook.MaxErrorBytes+100, "the error keeps a bounded excerpt")
		require.Contains(t, res.Err.Error(), "HTTP 500 Internal Server Error: xxxx")
	}
}

func TestSendTimesOut(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	res := newSender(t, webhook.SenderOptions{Timeout: 200 * time.Millisecond}).Send(t.Context(), delivery(rcv.URL))
	require.Zero(t, res.Status)
	require.EqualError(t, res.Err, "timed out after 200ms")
	require.GreaterOrEqual(t, res.Duration, 200*time.Millisecond)
}

func TestSendReportsRetryAfter(t *testing.T) {
	t.Parallel()
	for header, want := range map[string]time.Duration{
		"120": 2 * time.Minute,
		time.Now().Add(time.Hour).UTC().Format(http.TimeFormat): time.Hour,
		"soon": 0, "-5": 0, "": 0,
	} {
		rcv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
			if header != "" {
				w.Header().Set("Retry-After", header)
			}
			w.WriteHeader(http.StatusTooManyRequests)
		})
		res := newSender(t, webhook.SenderOptions{}).Send(t.Context(), delivery(rcv.URL))
		require.Equal(t, http.StatusTooManyRequests, res.Status)
		require.InDelta(t, want.Seconds(), res.RetryAfter.Seconds(), 2, "Retry-After: %q", header)
	}
}

// TestSendRefusesLoopbackAtDialTime sends to a real receiver on loopback
// with a guard that does not allow it: the connection is refused before it
// is made, whatever the URL said at creation.
func TestSendRefusesLoopbackAtDialTime(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, nil)
	s := webhook.NewSender(webhook.SenderOptions{Guard: webhook.NewGuard(nil)})
	t.Cleanup(s.Close)
	for _, url := range []string{rcv.URL, strings.Replace(rcv.URL, "127.0.0.1", "localhost", 1)} {
		res := s.Send(t.Context(), delivery(url))
		require.Zero(t, res.Status)
		require.ErrorContains(t, res.Err, "refused: ")
		require.ErrorContains(t, res.Err, "loopback")
	}
	require.Empty(t, rcv.hits)
}

func TestSendConnectionRefused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	res := newSender(t, webhook.SenderOptions{}).Send(t.Context(), delivery("http://"+addr+"/hook"))
	require.Zero(t, res.Status)
	require.ErrorContains(t, res.Err, "connection refused")
	require.NotContains(t, res.Err.Error(), "Post ", "the error does not repeat the URL")
}

func TestSendErrorExcerptIsCleanText(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte("bad\x00 input\r\n\tline two \xff" + strings.Repeat("é", 2000)))
	})
	res := newSender(t, webhook.SenderOptions{}).Send(t.Context(), delivery(rcv.URL))
	msg := res.Err.Error()
	require.True(t, strings.HasPrefix(msg, "HTTP 400 Bad Request: bad input line two \uFFFDéé"), msg)
	require.NotContains(t, msg, "\x00")
	require.NotContains(t, msg, "\n")
	require.True(t, strings.HasSuffix(msg, "é"), "cut on a rune boundary")
}

// TestSendSignsWithBothSecretsDuringARotation: with a previous secret, the
// webhook-signature header holds one v1 signature per secret, and the
// official library verifies the delivery with either.
func TestSendSignsWithBothSecretsDuringARotation(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, nil)
	d := delivery(rcv.URL)
	d.PreviousSecret = "whsec_" + strings.Repeat("QUJD", 8)
	require.NoError(t, newSender(t, webhook.SenderOptions{}).Send(t.Context(), d).Err)
	h := rcv.next(t)
	sigs := strings.Fields(h.Header.Get("webhook-signature"))
	require.Len(t, sigs, 2)
	for _, s := range sigs {
		require.True(t, strings.HasPrefix(s, "v1,"), s)
	}
	for _, secret := range []string{d.Secret, d.PreviousSecret} {
		wh, err := standardwebhooks.NewWebhook(secret)
		require.NoError(t, err)
		require.NoError(t, wh.Verify(h.Body, h.Header))
	}
	wh, err := standardwebhooks.NewWebhook("whsec_" + strings.Repeat("WFla", 8))
	require.NoError(t, err)
	require.Error(t, wh.Verify(h.Body, h.Header), "a third secret does not verify")

	// A previous secret that is not valid fails the attempt before sending.
	d.PreviousSecret = "whsec_short"
	require.ErrorContains(t, newSender(t, webhook.SenderOptions{}).Send(t.Context(), d).Err, "previous secret")
}
