package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/httpapi"
	"github.com/heraldhq/herald/internal/pubsub"
)

func publishCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs, cf := newClientFlagSet("publish", getenv, stderr)
	key := fs.String("idempotency-key", "", "makes a retry of this publish within 24 h return the first one's id and store nothing")
	batch := fs.String("batch", "", `publish NDJSON lines {"topic":…,"message":…[,"idempotency_key":…]} from this file ("-": standard input), up to 1000 per request, each request all or nothing`)
	pos, err := parseArgsMin(fs, args, 1, 3, "herald publish [--idempotency-key K] [flags] APP TOPIC JSON, or herald publish --batch FILE|- APP")
	if err != nil {
		return err
	}
	if *batch != "" {
		if len(pos) != 1 || *key != "" {
			fs.Usage()
			return errUsage
		}
		c, err := cf.client()
		if err != nil {
			return err
		}
		return publishBatch(ctx, c, pos[0], *batch, stdout)
	}
	if len(pos) != 3 {
		fs.Usage()
		return errUsage
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	if *key == "" {
		m, err := c.Publish(ctx, pos[0], pos[1], []byte(pos[2]))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "published to %s/%s: id %s\n", pos[0], m.Topic, m.ID)
		return nil
	}
	m, replayed, err := c.PublishIdempotent(ctx, pos[0], pos[1], *key, []byte(pos[2]))
	if err != nil {
		return err
	}
	if replayed {
		fmt.Fprintf(stdout, "already published to %s/%s with this key: id %s\n", pos[0], m.Topic, m.ID)
		return nil
	}
	fmt.Fprintf(stdout, "published to %s/%s: id %s\n", pos[0], m.Topic, m.ID)
	return nil
}

// Bounds of one request of `herald publish --batch`: the server's most
// messages per batch, and its default --max-batch-bytes less room for the
// envelope.
const (
	cliBatchMessages = pubsub.MaxBatch
	cliBatchBytes    = httpapi.DefaultMaxBatchBytes - 64<<10
)

// publishBatch publishes the NDJSON lines of the file name ("-": standard
// input) to app, in requests of up to cliBatchMessages lines, and prints
// each message's topic and id. Every line is read and checked before the
// first request; a request that fails stops the run, with the line it
// blames, after the requests before it were stored.
func publishBatch(ctx context.Context, c *client.Client, app, name string, stdout io.Writer) error {
	var in io.Reader = os.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("batch: %w", err)
		}
		defer f.Close()
		in = f
	}
	msgs, lines, err := readBatch(in)
	if err != nil {
		return err
	}
	if len(msgs) == 0 {
		return errors.New("batch: no messages in the input")
	}
	replayed := 0
	for start := 0; start < len(msgs); {
		end, size := start, 0
		for end < len(msgs) && end-start < cliBatchMessages && (end == start || size+len(msgs[end].Message) <= cliBatchBytes) {
			size += len(msgs[end].Message)
			end++
		}
		got, err := c.PublishBatch(ctx, app, msgs[start:end])
		if err != nil {
			var he *client.Error
			if errors.As(err, &he) && he.Index != nil && *he.Index >= 0 && start+*he.Index < end {
				return fmt.Errorf("batch: line %d: %w (the %d messages before this request were published)", lines[start+*he.Index], err, start)
			}
			return fmt.Errorf("batch: lines %d to %d: %w (the %d messages before this request were published)", lines[start], lines[end-1], err, start)
		}
		for _, m := range got {
			mark := ""
			if m.Replayed {
				mark = "\t(already published with this key)"
				replayed++
			}
			fmt.Fprintf(stdout, "%s\t%s%s\n", m.Topic, m.ID, mark)
		}
		start = end
	}
	fmt.Fprintf(stdout, "published %d messages to %s (%d already published)\n", len(msgs), app, replayed)
	return nil
}

// readBatch reads NDJSON batch lines, skipping blank ones, and returns the
// messages with the line number of each.
func readBatch(in io.Reader) ([]client.BatchMessage, []int, error) {
	var (
		msgs  []client.BatchMessage
		lines []int
	)
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), cliBatchBytes)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var m client.BatchMessage
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&m); err != nil {
			return nil, nil, fmt.Errorf("batch: line %d: want {\"topic\":…,\"message\":…}: %w", n, err)
		}
		if m.Topic == "" || m.Message == nil {
			return nil, nil, fmt.Errorf("batch: line %d: want {\"topic\":…,\"message\":…}: topic or message missing", n)
		}
		msgs = append(msgs, m)
		lines = append(lines, n)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("batch: read: %w", err)
	}
	return msgs, lines, nil
}
