package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Event types a Stream yields.
const (
	EventMessage      = "message"
	EventLagged       = "lagged"
	EventTopicDeleted = "topic_deleted"
)

// Event is one event of a stream.
type Event struct {
	// Type is EventMessage, EventLagged or EventTopicDeleted.
	Type string
	// ID is the stream's position after this event: the value a reconnect
	// sends as Last-Event-ID.
	ID string
	// Message is set for EventMessage.
	Message Message
	// Topic names the topic of a lagged or topic_deleted event.
	Topic string
	// Missed is how many events a lagged event says were lost.
	Missed uint64
}

// StreamOptions configures a Stream.
type StreamOptions struct {
	// LastEventID resumes after this position ("" starts with new events).
	LastEventID string
	// RetryDelay is the wait before a reconnect. 0 means the server's
	// retry hint, or one second before the first hint.
	RetryDelay time.Duration
	// Failover lists base URLs of other nodes of the same cluster. After a
	// connection fails or ends, the stream reconnects to the next one in
	// turn (the client's own URL first), resuming with Last-Event-ID, so a
	// node going away costs no event that history still holds.
	Failover []string
}

// Stream follows topics over SSE, reconnecting with Last-Event-ID after a
// network error or a server restart. A refusal (a 4xx answer: unknown topic,
// bad key) ends it. It is not safe for concurrent use.
type Stream struct {
	c      *Client
	ctx    context.Context
	app    string
	topics []string
	opts   StreamOptions
	lastID string
	retry  time.Duration

	body   io.ReadCloser
	frames *FrameReader
	// node indexes the base URLs (the client's, then Failover) for the next
	// connection.
	node int
	// Connects counts successful connections, the first included.
	Connects int
}

// Stream opens a stream of app's topics that lives until ctx ends or Close.
// It connects lazily, on the first Next.
func (c *Client) Stream(ctx context.Context, app string, topics []string, opts StreamOptions) *Stream {
	return &Stream{c: c, ctx: ctx, app: app, topics: topics, opts: opts, lastID: opts.LastEventID, retry: time.Second}
}

// LastEventID is the position a reconnect resumes from.
func (s *Stream) LastEventID() string { return s.lastID }

// Close ends the stream's current connection.
func (s *Stream) Close() error {
	if s.body != nil {
		err := s.body.Close()
		s.body = nil
		return err
	}
	return nil
}

func (s *Stream) url() string {
	base := s.c.base
	if n := s.node % (1 + len(s.opts.Failover)); n > 0 {
		base = strings.TrimRight(s.opts.Failover[n-1], "/")
	}
	if len(s.topics) == 1 {
		return base + topicPath(s.app, s.topics[0]) + "/events"
	}
	q := url.Values{"topic": s.topics}
	return base + "/v1/apps/" + url.PathEscape(s.app) + "/events?" + q.Encode()
}

func (s *Stream) connect() error {
	req, err := http.NewRequestWithContext(s.ctx, http.MethodGet, s.url(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	if s.c.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.c.token)
	}
	if s.lastID != "" {
		req.Header.Set("Last-Event-ID", s.lastID)
	}
	resp, err := s.c.http.Do(req)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return ResponseError(resp)
	}
	s.body = resp.Body
	s.frames = NewFrameReader(resp.Body)
	s.Connects++
	return nil
}

// Next returns the next event, reconnecting as needed. The start event
// that opens every connection is not returned: its id is kept (it is what
// LastEventID reports until the first message). It returns an *Error
// when the server refuses the stream, and ctx's error once ctx ends.
func (s *Stream) Next() (Event, error) {
	for {
		if s.ctx.Err() != nil {
			s.Close()
			return Event{}, s.ctx.Err()
		}
		if s.body == nil {
			if err := s.connect(); err != nil {
				var he *Error
				if errors.As(err, &he) && he.Status < 500 {
					return Event{}, err
				}
				s.node++
				if !s.wait() {
					return Event{}, s.ctx.Err()
				}
				continue
			}
		}
		f, err := s.frames.Next()
		s.lastID = s.frames.LastEventID()
		if err != nil {
			s.Close()
			s.node++
			if !s.wait() {
				return Event{}, s.ctx.Err()
			}
			continue
		}
		if f.Retry > 0 {
			s.retry = time.Duration(f.Retry) * time.Millisecond
		}
		if f.Type == eventStart {
			continue // only its id matters, and the frame reader kept it
		}
		ev, err := decodeEvent(f)
		if err != nil {
			return Event{}, err
		}
		return ev, nil
	}
}

// eventStart is the type of the first event of every stream: its id is the
// stream's starting position, so a reconnect before the first message
// resumes from there.
const eventStart = "start"

func (s *Stream) wait() bool {
	d := s.opts.RetryDelay
	if d <= 0 {
		d = s.retry
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.ctx.Done():
		return false
	}
}

func decodeEvent(f Frame) (Event, error) {
	ev := Event{ID: f.ID}
	switch f.Type {
	case "", EventMessage:
		ev.Type = EventMessage
		if err := json.Unmarshal([]byte(f.Data), &ev.Message); err != nil {
			return Event{}, fmt.Errorf("herald: decode event: %w", err)
		}
		ev.Topic = ev.Message.Topic
	case EventLagged, EventTopicDeleted:
		ev.Type = f.Type
		var d struct {
			Topic  string `json:"topic"`
			Missed uint64 `json:"missed"`
		}
		if err := json.Unmarshal([]byte(f.Data), &d); err != nil {
			return Event{}, fmt.Errorf("herald: decode %s event: %w", f.Type, err)
		}
		ev.Topic, ev.Missed = d.Topic, d.Missed
	default:
		ev.Type = f.Type
	}
	return ev, nil
}
