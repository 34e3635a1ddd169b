// Package pubsub is Herald's one place that publishes. The Service validates
// a message, stores it (the store assigns its id in commit order), and hands
// it to the broadcaster in id order once it has committed. It also owns the
// lifecycle of apps and topics, so that deleting either ends live streams
// through the broadcaster.
//
// # Dependencies
//
// pubsub imports only contracts: store and broadcast. It never learns which
// implementation it holds.
package pubsub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/broadcast"
	"github.com/heraldhq/herald/internal/store"
)

// ErrInvalid means the request breaks a rule of the API (a bad topic name,
// a body that is not JSON). Its message says which.
var ErrInvalid = errors.New("invalid")

// ErrTooLarge means the message is larger than the configured limit.
var ErrTooLarge = errors.New("message too large")

// ErrTooDeep means the message nests arrays and objects deeper than the
// configured limit.
var ErrTooDeep = errors.New("message too deep")

// DefaultMaxMessageBytes is the largest message accepted when
// Options.MaxMessageBytes is 0.
const DefaultMaxMessageBytes = 64 << 10

// DefaultMaxDepth is the deepest nesting accepted when Options.MaxDepth
// is 0, and MaxMaxDepth the most it may be set to: Go's encoding/json
// refuses documents nested deeper than 10,000 levels, and a message is
// read inside an envelope (history, stream, webhook) a few levels deep, so
// a message must stay well under that for every reader to decode it.
const (
	DefaultMaxDepth = 64
	MaxMaxDepth     = 1000
)

// MaxTopicLen is the longest topic name.
const MaxTopicLen = 128

// Options configures a Service.
type Options struct {
	// MaxMessageBytes is the largest message, counted in compact JSON.
	// 0 means DefaultMaxMessageBytes.
	MaxMessageBytes int
	// MaxDepth is how deeply a message's arrays and objects may nest
	// (1 to MaxMaxDepth). 0 means DefaultMaxDepth.
	MaxDepth int
	// PublishedFunc, if not nil, is called after each committed publish with
	// the time it took; the server uses it for metrics.
	PublishedFunc func(time.Duration)
	// Limits, if not nil, bounds each app's topics: CreateTopic counts and
	// creates in one step of the store, which must then be a
	// store.LimitStore (see TopicLimits).
	Limits TopicLimits
}

// Service publishes messages and manages apps and topics.
// It is safe for concurrent use.
type Service struct {
	store         store.Store
	broadcaster   broadcast.Broadcaster
	maxMessage    int
	maxDepth      int
	publishedFunc func(time.Duration)
	// limits and topics are Options.Limits and the store as it creates
	// topics within them; both nil without limits.
	limits TopicLimits
	topics topicCreator
}

// New returns a Service over a store and a broadcaster.
func New(s store.Store, b broadcast.Broadcaster, opts Options) (*Service, error) {
	if s == nil || b == nil {
		return nil, errors.New("pubsub: store and broadcaster are required")
	}
	if opts.MaxMessageBytes < 0 {
		return nil, fmt.Errorf("pubsub: negative MaxMessageBytes %d", opts.MaxMessageBytes)
	}
	if opts.MaxMessageBytes == 0 {
		opts.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if opts.MaxDepth < 0 || opts.MaxDepth > MaxMaxDepth {
		return nil, fmt.Errorf("pubsub: MaxDepth %d outside 1 to %d", opts.MaxDepth, MaxMaxDepth)
	}
	if opts.MaxDepth == 0 {
		opts.MaxDepth = DefaultMaxDepth
	}
	svc := &Service{store: s, broadcaster: b, maxMessage: opts.MaxMessageBytes, maxDepth: opts.MaxDepth, publishedFunc: opts.PublishedFunc}
	if opts.Limits != nil {
		tc, ok := s.(topicCreator)
		if !ok {
			return nil, fmt.Errorf("pubsub: store %T cannot create topics within a limit", s)
		}
		svc.limits, svc.topics = opts.Limits, tc
	}
	return svc, nil
}

// MaxMessageBytes is the largest message the service accepts.
func (s *Service) MaxMessageBytes() int { return s.maxMessage }

// MaxDepth is the deepest nesting of arrays and objects the service
// accepts.
func (s *Service) MaxDepth() int { return s.maxDepth }

// ValidateTopic checks a topic name: 1 to 128 characters of A-Z a-z 0-9 . _ -,
// not only dots.
func ValidateTopic(name string) error {
	if name == "" || len(name) > MaxTopicLen {
		return fmt.Errorf("%w: topic name must be 1 to %d characters", ErrInvalid, MaxTopicLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '.' && c != '_' && c != '-' {
			return fmt.Errorf("%w: topic name may hold only A-Z a-z 0-9 . _ -", ErrInvalid)
		}
	}
	if strings.Trim(name, ".") == "" {
		// "." and ".." are path segments: clients and proxies normalise
		// them away, so such a topic could be created but never reached.
		return fmt.Errorf("%w: a topic name must hold something besides dots", ErrInvalid)
	}
	return nil
}

// Publish validates body as one JSON value, stores it in compact form and,
// once committed, broadcasts it. The returned message is committed.
func (s *Service) Publish(ctx context.Context, appID, topic string, body []byte) (store.Message, error) {
	p, err := s.PublishRequest(ctx, Publication{AppID: appID, Topic: topic, Body: body})
	return p.Message, err
}

// MaxIdempotencyKeyLen is the longest idempotency key.
const MaxIdempotencyKeyLen = 255

// Publication is one publish request.
type Publication struct {
	AppID, Topic string
	// Body is the message: one JSON value, in any formatting. The service
	// keeps it as the stored and broadcast message when it is compact
	// already, so the caller must not change it once published.
	Body []byte
	// IdempotencyKey, if not empty, makes a retry of this publish within
	// store.IdempotencyWindow return the first one's message and store
	// nothing (see store.PublishRequest). 1 to 255 printable ASCII
	// characters.
	IdempotencyKey string
}

// Published is the result of a publish.
type Published struct {
	// Message is the committed message: this publish's, or for a replay the
	// first publish's with its key.
	Message store.Message
	// Replayed reports that the publish repeated an earlier one with the
	// same idempotency key, so nothing was stored or broadcast.
	Replayed bool
}

// PublishRequest is Publish with the options of a Publication. A key used
// in the window by a publish to another topic gives an error wrapping
// store.ErrConflict.
func (s *Service) PublishRequest(ctx context.Context, p Publication) (Published, error) {
	start := time.Now()
	if err := ValidateTopic(p.Topic); err != nil {
		return Published{}, err
	}
	if err := ValidateIdempotencyKey(p.IdempotencyKey); err != nil {
		return Published{}, err
	}
	compact, err := s.compact(p.Body)
	if err != nil {
		return Published{}, err
	}
	replayed := true
	msg, err := s.store.Publish(ctx, store.PublishRequest{
		AppID:          p.AppID,
		Topic:          p.Topic,
		Body:           compact,
		IdempotencyKey: p.IdempotencyKey,
		CommittedFunc:  s.committedFunc(ctx, &replayed),
	})
	if err != nil {
		return Published{}, fmt.Errorf("publish: %w", err)
	}
	if !replayed && s.publishedFunc != nil {
		s.publishedFunc(time.Since(start))
	}
	return Published{Message: msg, Replayed: replayed}, nil
}

// MaxBatch is the most messages one batch publish holds.
const MaxBatch = 1000

// PublishBatch validates every publication, stores them all in one
// transaction or none (store.Store.PublishBatch) and broadcasts each
// committed message as Publish would, in id order per topic. The results
// are in the order of ps. An error caused by one publication is a
// *store.ItemError naming the first bad one: a bad topic name, body or key
// (ErrInvalid, ErrTooLarge), an idempotency key that an earlier
// publication of the batch carries too (ErrInvalid), a topic that does not
// exist (store.ErrNotFound) or a key used in the window with another topic
// (store.ErrConflict). A publication whose key a publish used in the
// window with its topic replays that publish, as PublishRequest does, and
// the others are stored.
func (s *Service) PublishBatch(ctx context.Context, ps []Publication) ([]Published, error) {
	start := time.Now()
	if len(ps) == 0 || len(ps) > MaxBatch {
		return nil, fmt.Errorf("%w: a batch holds 1 to %d messages, not %d", ErrInvalid, MaxBatch, len(ps))
	}
	reqs := make([]store.PublishRequest, len(ps))
	out := make([]Published, len(ps))
	var keys map[string]int
	for i, p := range ps {
		if err := ValidateTopic(p.Topic); err != nil {
			return nil, &store.ItemError{Index: i, Err: err}
		}
		if err := ValidateIdempotencyKey(p.IdempotencyKey); err != nil {
			return nil, &store.ItemError{Index: i, Err: err}
		}
		if p.IdempotencyKey != "" {
			if keys == nil {
				keys = make(map[string]int)
			}
			if j, dup := keys[p.IdempotencyKey]; dup {
				return nil, &store.ItemError{Index: i, Err: fmt.Errorf("%w: idempotency key %q is also the key of message %d of the batch", ErrInvalid, p.IdempotencyKey, j)}
			}
			keys[p.IdempotencyKey] = i
		}
		compact, err := s.compact(p.Body)
		if err != nil {
			return nil, &store.ItemError{Index: i, Err: err}
		}
		reqs[i] = store.PublishRequest{
			AppID:          p.AppID,
			Topic:          p.Topic,
			Body:           compact,
			IdempotencyKey: p.IdempotencyKey,
			CommittedFunc:  s.committedFunc(ctx, &out[i].Replayed),
		}
		// Replayed until the store says it committed this one.
		out[i].Replayed = true
	}
	msgs, err := s.store.PublishBatch(ctx, reqs)
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	for i, m := range msgs {
		out[i].Message = m
		if !out[i].Replayed && s.publishedFunc != nil {
			s.publishedFunc(time.Since(start))
		}
	}
	return out, nil
}

// committedFunc returns the store.PublishRequest.CommittedFunc of a publish:
// it broadcasts the message and clears *replayed. The store calls it in
// commit order per topic, so subscribers see ids in order even when
// publishes to one topic race. It is not called for a replay, which is how
// a replay is told apart.
func (s *Service) committedFunc(ctx context.Context, replayed *bool) func(store.Message) {
	return func(m store.Message) {
		*replayed = false
		s.broadcaster.Publish(context.WithoutCancel(ctx), &broadcast.Event{
			App: m.AppID, Topic: m.Topic, ID: m.ID, Message: m.Body, PublishedAt: m.PublishedAt,
		})
	}
}

// ValidateIdempotencyKey checks an idempotency key: empty (none), or 1 to
// 255 printable ASCII characters (space to tilde).
func ValidateIdempotencyKey(key string) error {
	if len(key) > MaxIdempotencyKeyLen {
		return fmt.Errorf("%w: the idempotency key is longer than %d characters", ErrInvalid, MaxIdempotencyKeyLen)
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return fmt.Errorf("%w: the idempotency key may hold only printable ASCII characters", ErrInvalid)
		}
	}
	return nil
}

// compact checks that body is one valid UTF-8 JSON value within the size
// limit and returns it without insignificant whitespace, so that it fits on
// one SSE data line.
func (s *Service) compact(body []byte) (json.RawMessage, error) {
	if !utf8.Valid(body) {
		// json.Valid accepts invalid UTF-8 inside strings; we do not.
		return nil, fmt.Errorf("%w: message is not valid UTF-8", ErrInvalid)
	}
	// Before parsing: the parser gives up past 10,000 levels with a
	// message that does not name the limit a client must stay under.
	d, spaced := scan(body)
	if d > s.maxDepth {
		return nil, fmt.Errorf("%w: arrays and objects nest deeper than %d levels", ErrTooDeep, s.maxDepth)
	}
	// Most clients send compact JSON: then the body is the message, kept
	// without a copy (json.Compact only drops whitespace outside strings),
	// unless its buffer is much larger than it, as the message may live
	// long in history and broadcast rings.
	if !spaced && len(body) > 0 && len(body) <= s.maxMessage && cap(body)-len(body) <= len(body)/4 && json.Valid(body) {
		return body[:len(body):len(body)], nil
	}
	var buf bytes.Buffer
	buf.Grow(len(body))
	if err := json.Compact(&buf, body); err != nil {
		return nil, fmt.Errorf("%w: message is not valid JSON: %s", ErrInvalid, err.Error())
	}
	if buf.Len() == 0 {
		return nil, fmt.Errorf("%w: message is empty; send a JSON value", ErrInvalid)
	}
	if buf.Len() > s.maxMessage {
		return nil, fmt.Errorf("%w: %d bytes of compact JSON, limit %d", ErrTooLarge, buf.Len(), s.maxMessage)
	}
	return buf.Bytes(), nil
}

// scan returns how deeply the arrays and objects of b nest, and whether b
// holds JSON whitespace outside strings; brackets and whitespace in
// strings are not counted. b need not be valid JSON.
func scan(b []byte) (depth int, spaced bool) {
	var (
		d               int
		inString, escap bool
	)
	for _, c := range b {
		switch {
		case escap:
			escap = false
		case inString:
			switch c {
			case '\\':
				escap = true
			case '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			d++
			depth = max(depth, d)
		case c == ']' || c == '}':
			d--
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			spaced = true
		}
	}
	return depth, spaced
}

// CreateTopic creates a topic; created is false when it already existed.
func (s *Service) CreateTopic(ctx context.Context, appID, name string) (store.Topic, bool, error) {
	if err := ValidateTopic(name); err != nil {
		return store.Topic{}, false, err
	}
	if s.limits != nil {
		return s.createTopicWithin(ctx, appID, name)
	}
	t, created, err := s.store.CreateTopic(ctx, appID, name)
	if err != nil {
		return store.Topic{}, false, fmt.Errorf("create topic: %w", err)
	}
	return t, created, nil
}

// DeleteTopic deletes a topic with its history and ends its live streams.
func (s *Service) DeleteTopic(ctx context.Context, appID, name string) error {
	if err := ValidateTopic(name); err != nil {
		return err
	}
	if err := s.store.DeleteTopic(ctx, appID, name); err != nil {
		return fmt.Errorf("delete topic: %w", err)
	}
	s.broadcaster.DropTopic(ctx, appID, name)
	return nil
}

// ListTopics returns an app's topics by name.
func (s *Service) ListTopics(ctx context.Context, appID string) ([]store.Topic, error) {
	ts, err := s.store.ListTopics(ctx, appID)
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	return ts, nil
}

// AppWithKeys is a newly created app with its keys in full. The keys are
// shown once: only their hashes are stored.
type AppWithKeys struct {
	App  store.App
	Keys []NewKey
}

// NewKey is a key as shown to its owner once.
type NewKey struct {
	Key    string
	Scopes []store.Scope
}

// MaxAppNameLen is the longest app name.
const MaxAppNameLen = 100

// CreateApp creates an app with two keys: a full one (publish, subscribe,
// manage) for the app's backend, and a subscribe-only one.
func (s *Service) CreateApp(ctx context.Context, name string) (AppWithKeys, error) {
	if name == "" || len(name) > MaxAppNameLen || !utf8.ValidString(name) {
		return AppWithKeys{}, fmt.Errorf("%w: app name must be 1 to %d bytes of UTF-8", ErrInvalid, MaxAppNameLen)
	}
	app := store.App{ID: auth.NewID(), Name: name, CreatedAt: time.Now().UTC()}
	scopeSets := [][]store.Scope{
		{store.ScopePublish, store.ScopeSubscribe, store.ScopeManage},
		{store.ScopeSubscribe},
	}
	out := AppWithKeys{App: app}
	var keys []store.Key
	for _, scopes := range scopeSets {
		k, full := auth.NewKey(app.ID, scopes)
		k.CreatedAt = app.CreatedAt
		keys = append(keys, k)
		out.Keys = append(out.Keys, NewKey{Key: full, Scopes: scopes})
	}
	if err := s.store.CreateApp(ctx, app, keys); err != nil {
		return AppWithKeys{}, fmt.Errorf("create app: %w", err)
	}
	return out, nil
}

// ListApps returns every app.
func (s *Service) ListApps(ctx context.Context) ([]store.App, error) {
	apps, err := s.store.ListApps(ctx)
	if err != nil {
		return nil, fmt.Errorf("list apps: %w", err)
	}
	return apps, nil
}

// DeleteApp deletes an app with everything it owns and ends its live streams.
func (s *Service) DeleteApp(ctx context.Context, appID string) error {
	topics, err := s.store.ListTopics(ctx, appID)
	if err != nil {
		return fmt.Errorf("delete app: %w", err)
	}
	if err := s.store.DeleteApp(ctx, appID); err != nil {
		return fmt.Errorf("delete app: %w", err)
	}
	for _, t := range topics {
		s.broadcaster.DropTopic(ctx, appID, t.Name)
	}
	return nil
}

// History returns up to limit messages of a topic after a message id.
func (s *Service) History(ctx context.Context, appID, topic string, after uint64, limit int) ([]store.Message, error) {
	msgs, err := s.store.History(ctx, appID, topic, after, limit)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	return msgs, nil
}
