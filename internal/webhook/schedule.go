package webhook

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// DefaultRetries returns the Standard Webhooks retry schedule: after a
// first attempt made at once, retries 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and
// 10 h after each failure, eight attempts in all (about 27.5 hours).
func DefaultRetries() []time.Duration {
	return []time.Duration{
		5 * time.Second, 5 * time.Minute, 30 * time.Minute,
		2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour,
	}
}

// DefaultRetrySchedule is DefaultRetries as --webhook-retry-schedule writes
// it.
const DefaultRetrySchedule = "5s,5m,30m,2h,5h,10h,10h"

// DefaultJitter is the spread of each retry delay: a delay d becomes a
// uniformly random one in [d-15%, d+15%], so receivers that failed together
// are not retried in one burst.
const DefaultJitter = 0.15

// MaxRetryAfter caps how long a receiver's Retry-After can postpone the next
// attempt.
const MaxRetryAfter = time.Hour

// ParseRetries reads a retry schedule: a comma-separated list of the delays
// before each retry ("5s,5m,30m"), each positive. There is always one first
// attempt, so a list of n delays makes n+1 attempts.
func ParseRetries(s string) ([]time.Duration, error) {
	var out []time.Duration
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		d, err := time.ParseDuration(f)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%q is not a positive duration (like 5s, 30m, 2h)", f)
		}
		out = append(out, d)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("the schedule names no delay")
	}
	return out, nil
}

// FormatRetries writes a schedule as ParseRetries reads it.
func FormatRetries(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.String()
	}
	return strings.Join(parts, ",")
}

// schedule decides when a failed delivery is tried again.
type schedule struct {
	retries []time.Duration
	jitter  float64
}

// attempts is how many attempts a delivery gets before it is dead.
func (s schedule) attempts() int { return 1 + len(s.retries) }

// next returns the delay before the attempt after attempt number n (1 for
// the first), and false when n was the last. retryAfter, the receiver's
// wish, wins when longer than the schedule's delay, up to MaxRetryAfter.
func (s schedule) next(n int, retryAfter time.Duration) (time.Duration, bool) {
	if n >= s.attempts() {
		return 0, false
	}
	d := s.retries[max(n-1, 0)]
	if s.jitter > 0 {
		d += time.Duration((rand.Float64()*2 - 1) * s.jitter * float64(d))
	}
	if ra := min(retryAfter, MaxRetryAfter); ra > d {
		d = ra
	}
	return d, true
}
