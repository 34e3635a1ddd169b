package loadtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// buildPayload appends to dst the bench message for seq sent at sentNanos
// (Unix nanoseconds), {"seq":N,"t":T,"pad":"xxx…"}, padded to exactly size
// bytes. When size is smaller than the message without padding, the message
// is returned unpadded and is longer than size.
func buildPayload(dst []byte, seq uint64, sentNanos int64, size int) []byte {
	start := len(dst)
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"t":`...)
	dst = strconv.AppendInt(dst, sentNanos, 10)
	dst = append(dst, `,"pad":"`...)
	const tail = `"}`
	for pad := size - (len(dst) - start) - len(tail); pad > 0; pad-- {
		dst = append(dst, 'x')
	}
	return append(dst, tail...)
}

// parseDelivery reads seq and send time from the data of a message frame,
// {"id":"…","topic":"…","message":{"seq":N,"t":T,"pad":"…"},…}. The server
// re-encodes messages compactly but keeps key order, so a string search finds
// them without decoding the whole envelope; anything else falls back to
// encoding/json.
func parseDelivery(data string) (seq uint64, sentNanos int64, err error) {
	const key = `"message":{"seq":`
	if i := strings.Index(data, key); i >= 0 {
		rest := data[i+len(key):]
		j := strings.IndexByte(rest, ',')
		if j > 0 && strings.HasPrefix(rest[j:], `,"t":`) {
			s, err1 := strconv.ParseUint(rest[:j], 10, 64)
			rest = rest[j+len(`,"t":`):]
			k := strings.IndexAny(rest, ",}")
			if k > 0 {
				t, err2 := strconv.ParseInt(rest[:k], 10, 64)
				if err1 == nil && err2 == nil {
					return s, t, nil
				}
			}
		}
	}
	var env struct {
		Message *struct {
			Seq *uint64 `json:"seq"`
			T   *int64  `json:"t"`
		} `json:"message"`
	}
	if err := json.Unmarshal([]byte(data), &env); err != nil {
		return 0, 0, fmt.Errorf("decode event: %w", err)
	}
	if env.Message == nil || env.Message.Seq == nil || env.Message.T == nil {
		return 0, 0, errors.New("decode event: not a bench message")
	}
	return *env.Message.Seq, *env.Message.T, nil
}
