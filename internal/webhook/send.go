package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/heraldhq/herald/internal/event"
	"github.com/heraldhq/herald/internal/store"
)

// Defaults and bounds of one attempt.
const (
	// DefaultTimeout bounds one attempt: connecting, sending, and reading
	// the answer.
	DefaultTimeout = 15 * time.Second
	// MaxResponseBytes is the most of a response body an attempt reads.
	// Anything beyond it is left unread (and its connection not reused).
	MaxResponseBytes = 64 << 10
	// MaxErrorBytes is the most of a response body kept in an error.
	MaxErrorBytes = 1 << 10
	// UserAgent is the User-Agent of every delivery.
	UserAgent = "Herald-Webhooks/1"
)

// SenderOptions configures a Sender. Zero values mean the documented
// default.
type SenderOptions struct {
	// Guard refuses connections to special-purpose addresses. Nil means
	// NewGuard(nil): every one of them is refused.
	Guard *Guard
	// Timeout bounds each attempt. 0 means DefaultTimeout.
	Timeout time.Duration
	// MaxIdleConnsPerHost is how many idle connections to one receiver are
	// kept for reuse. 0 means 16.
	MaxIdleConnsPerHost int
	// NowFunc returns the current time, for webhook-timestamp. Nil means
	// time.Now.
	NowFunc func() time.Time
}

// Sender makes single delivery attempts: one signed POST each, with no
// redirects followed. It is safe for concurrent use. Close releases its idle
// connections.
type Sender struct {
	client  *http.Client
	timeout time.Duration
	now     func() time.Time
}

// NewSender returns a Sender.
func NewSender(opts SenderOptions) *Sender {
	if opts.Guard == nil {
		opts.Guard = NewGuard(nil)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxIdleConnsPerHost <= 0 {
		opts.MaxIdleConnsPerHost = 16
	}
	if opts.NowFunc == nil {
		opts.NowFunc = time.Now
	}
	dialer := &net.Dialer{Timeout: opts.Timeout, KeepAlive: 30 * time.Second, Control: opts.Guard.DialControl}
	tr := &http.Transport{
		// No proxy from the environment: the guard checks the address
		// dialled, which must be the receiver's.
		Proxy:               nil,
		DialContext:         dialer.DialContext,
		ForceAttemptHTTP2:   true,
		TLSHandshakeTimeout: opts.Timeout,
		MaxIdleConnsPerHost: opts.MaxIdleConnsPerHost,
		IdleConnTimeout:     90 * time.Second,
	}
	return &Sender{
		client: &http.Client{
			Transport: tr,
			// A redirect is an answer like any other non-2xx: the attempt
			// failed. Following it would send the signed body to a URL
			// nobody checked.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		timeout: opts.Timeout,
		now:     opts.NowFunc,
	}
}

// Close closes the Sender's idle connections. Attempts still running keep
// theirs until they end.
func (s *Sender) Close() { s.client.CloseIdleConnections() }

// Result is what one attempt got.
type Result struct {
	// Status is the HTTP status of the answer, 0 when there was none
	// (a timeout, a refused or failed connection).
	Status int
	// RetryAfter is the answer's Retry-After, 0 when it had none.
	RetryAfter time.Duration
	// Err is nil when the receiver answered 2xx; otherwise it says what
	// went wrong, with the start of the response body if there was one.
	Err error
	// Duration is how long the attempt took.
	Duration time.Duration
}

// Delivered reports whether the receiver took the delivery (2xx).
func (r Result) Delivered() bool { return r.Err == nil }

// Body returns the body of a delivery: the JSON of its message event,
// byte for byte the data of the message's SSE frame.
func Body(d *store.Delivery) []byte {
	ev := event.Event{ID: d.MessageID, Topic: d.Topic, Message: d.Body, PublishedAt: d.PublishedAt}
	return event.AppendData(make([]byte, 0, 96+len(d.Topic)+len(d.Body)), &ev)
}

// Send makes one attempt at d: it POSTs the body, signed with d.Secret (and
// d.PreviousSecret, when set), to
// d.URL with the Standard Webhooks headers (webhook-id is d.ID, the same on
// every attempt; webhook-timestamp is now). The attempt ends within the
// Sender's timeout, or sooner if ctx ends.
func (s *Sender) Send(ctx context.Context, d *store.Delivery) Result {
	start := time.Now()
	res := s.send(ctx, d)
	res.Duration = time.Since(start)
	return res
}

func (s *Sender) send(ctx context.Context, d *store.Delivery) Result {
	key, err := ParseSecret(d.Secret)
	if err != nil {
		return Result{Err: fmt.Errorf("sign: %w", err)}
	}
	var previous []byte
	if d.PreviousSecret != "" {
		// A previous secret was checked when it was the trigger's secret.
		if previous, err = ParseSecret(d.PreviousSecret); err != nil {
			return Result{Err: fmt.Errorf("sign with the previous secret: %w", err)}
		}
	}
	body := Body(d)
	ctx, cancel := context.WithTimeoutCause(ctx, s.timeout, errAttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(body))
	if err != nil {
		return Result{Err: fmt.Errorf("request: %w", err)}
	}
	ts := s.now().Unix()
	sig := sign(key, d.ID, ts, body)
	if previous != nil {
		// During a rotation's overlap: one signature per secret, separated
		// by a space, as Standard Webhooks allows; a receiver that knows
		// either secret verifies the delivery.
		sig += " " + sign(previous, d.ID, ts, body)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set(HeaderID, d.ID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, sig)

	resp, err := s.client.Do(req)
	if err != nil {
		return Result{Err: s.transportError(ctx, err)}
	}
	defer resp.Body.Close()
	res := Result{Status: resp.StatusCode, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), s.now())}
	// Read what the cap allows: a 2xx body only so that the connection can
	// be reused, any other for the error.
	snippet, readErr := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return res
	}
	msg := fmt.Sprintf("HTTP %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	if loc := resp.Header.Get("Location"); resp.StatusCode >= 300 && resp.StatusCode < 400 && loc != "" {
		msg += " to " + clean([]byte(loc), 256) + " (redirects are not followed)"
	}
	if text := clean(snippet, MaxErrorBytes); text != "" {
		msg += ": " + text
	} else if readErr != nil {
		msg += " (reading the body: " + s.transportError(ctx, readErr).Error() + ")"
	}
	res.Err = errors.New(msg)
	return res
}

var errAttemptTimeout = errors.New("timed out")

// transportError says what stopped an attempt that got no answer.
func (s *Sender) transportError(ctx context.Context, err error) error {
	var refused *RefusedError
	switch {
	case errors.As(err, &refused):
		return fmt.Errorf("refused: %w", refused)
	case errors.Is(context.Cause(ctx), errAttemptTimeout):
		return fmt.Errorf("timed out after %s", s.timeout)
	}
	// url.Error repeats the method and URL, which the delivery names.
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// clean makes a response excerpt safe to store and show: valid UTF-8,
// without NUL or other control characters, collapsed to one line, at most
// limit bytes.
func clean(b []byte, limit int) string {
	if len(b) > limit {
		b = b[:limit]
		// Drop a rune the cut split in half.
		i := len(b) - 1
		for i > 0 && len(b)-i < utf8.UTFMax && !utf8.RuneStart(b[i]) {
			i--
		}
		if !utf8.FullRune(b[i:]) {
			b = b[:i]
		}
	}
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
// Anything else, or a time in the past, is 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, int64(maxRetryAfterParsed/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), maxRetryAfterParsed)
	}
	return 0
}

// maxRetryAfterParsed keeps absurd Retry-After values from overflowing; the
// dispatcher applies its own, lower cap.
const maxRetryAfterParsed = 365 * 24 * time.Hour
