package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// parseReadyLine reports the address a `herald serve --log-format json` log
// line announces, if it is the "herald ready" line.
func parseReadyLine(line []byte) (addr string, ok bool) {
	var rec struct {
		Msg  string `json:"msg"`
		Addr string `json:"addr"`
	}
	if json.Unmarshal(line, &rec) != nil || rec.Msg != "herald ready" || rec.Addr == "" {
		return "", false
	}
	return rec.Addr, true
}

// parsePromText reads the Prometheus text exposition format into a map from
// series (the metric name, with its labels as written: `x{le="0.1"}`) to
// value. Comments, blank lines and timestamps are skipped.
func parsePromText(r io.Reader) (map[string]float64, error) {
	out := make(map[string]float64)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		series, rest, err := splitSeries(line)
		if err != nil {
			return nil, fmt.Errorf("metrics line %d: %w", n, err)
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 || len(fields) > 2 {
			return nil, fmt.Errorf("metrics line %d: want a value and an optional timestamp after %s", n, series)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %d: %w", n, err)
		}
		out[series] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	return out, nil
}

// splitSeries splits a sample line after its series: the name, and the
// label set if there is one, whose quoted values may hold spaces, braces and
// escaped quotes.
func splitSeries(line string) (series, rest string, err error) {
	i := strings.IndexAny(line, "{ \t")
	if i < 0 {
		return "", "", fmt.Errorf("no value in %q", line)
	}
	if line[i] != '{' {
		return line[:i], line[i:], nil
	}
	quoted := false
	for j := i + 1; j < len(line); j++ {
		switch c := line[j]; {
		case quoted && c == '\\':
			j++ // skip the escaped character
		case c == '"':
			quoted = !quoted
		case !quoted && c == '}':
			return line[:j+1], line[j+1:], nil
		}
	}
	return "", "", fmt.Errorf("unterminated labels in %q", line)
}
