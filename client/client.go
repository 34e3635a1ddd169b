// Package client is the Go SDK for Herald's v1 HTTP API: a typed client for
// apps, topics and publishing, and a stream reader that follows topics over
// Server-Sent Events and reconnects with Last-Event-ID, so a dropped
// connection loses nothing that is still in the server's history.
package client

import (
	"bytes"
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

// Client calls one Herald server with one credential (an app key or the
// admin token). It is safe for concurrent use.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client used for every request. Streams need a
// client without an overall Timeout.
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// New returns a client of the server at baseURL (like http://127.0.0.1:8080)
// that authenticates with token.
func New(baseURL, token string, opts ...Option) *Client {
	c := &Client{base: strings.TrimRight(baseURL, "/"), token: token, http: http.DefaultClient}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Error is an error answer from the server.
type Error struct {
	Status  int
	Code    string
	Message string
	// Index is the message of a batch publish the error is about, nil
	// when it is about none.
	Index *int
}

func (e *Error) Error() string {
	return fmt.Sprintf("herald: %d %s: %s", e.Status, e.Code, e.Message)
}

// Key is an app key as returned once at app creation.
type Key struct {
	Key    string   `json:"key"`
	Scopes []string `json:"scopes"`
}

// App is a tenant.
type App struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	Keys      []Key     `json:"keys,omitempty"`
}

// Topic is a topic with its head id and live subscriber count.
type Topic struct {
	Name        string    `json:"name"`
	LastID      string    `json:"last_id"`
	Subscribers int       `json:"subscribers"`
	CreatedAt   time.Time `json:"created_at"`
}

// Message is a published message.
type Message struct {
	ID          string          `json:"id"`
	Topic       string          `json:"topic"`
	Message     json.RawMessage `json:"message,omitempty"`
	PublishedAt time.Time       `json:"published_at"`
}

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, out any) (int, error) {
	status, _, err := c.doHeader(ctx, method, path, nil, body, out)
	return status, err
}

// doHeader is do with extra request headers, returning the response's.
func (c *Client) doHeader(ctx context.Context, method, path string, header http.Header, body io.Reader, out any) (int, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return 0, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return resp.StatusCode, resp.Header, ResponseError(resp)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp.StatusCode, resp.Header, fmt.Errorf("herald: decode response: %w", err)
		}
	}
	return resp.StatusCode, resp.Header, nil
}

// ResponseError is the error of an answer with an error status: an *Error
// with the code and message of its JSON body (read up to 64 KiB), or the
// code http_error and the body's text when it holds none. Every method
// returns it for such an answer; callers that send their own requests (a
// load tool on a connection of its own) read theirs with it too.
func ResponseError(resp *http.Response) error {
	var env struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Index   *int   `json:"index"`
		} `json:"error"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &env) != nil || env.Error.Code == "" {
		return &Error{Status: resp.StatusCode, Code: "http_error", Message: strings.TrimSpace(string(b))}
	}
	return &Error{Status: resp.StatusCode, Code: env.Error.Code, Message: env.Error.Message, Index: env.Error.Index}
}

func jsonBody(v any) io.Reader {
	b, _ := json.Marshal(v)
	return bytes.NewReader(b)
}

func topicPath(app, topic string) string {
	return "/v1/apps/" + url.PathEscape(app) + "/topics/" + url.PathEscape(topic)
}

// CreateApp creates an app (admin token required). The keys it returns are
// shown only this once.
func (c *Client) CreateApp(ctx context.Context, name string) (App, error) {
	var a App
	_, err := c.do(ctx, http.MethodPost, "/v1/apps", jsonBody(map[string]string{"name": name}), &a)
	return a, err
}

// ListApps lists every app (admin token required).
func (c *Client) ListApps(ctx context.Context) ([]App, error) {
	var out struct {
		Apps []App `json:"apps"`
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/apps", nil, &out)
	return out.Apps, err
}

// DeleteApp deletes an app and everything it owns (admin token required).
func (c *Client) DeleteApp(ctx context.Context, app string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/apps/"+url.PathEscape(app), nil, nil)
	return err
}

// CreateTopic creates a topic; created is false when it already existed.
func (c *Client) CreateTopic(ctx context.Context, app, topic string) (t Topic, created bool, err error) {
	status, err := c.do(ctx, http.MethodPut, topicPath(app, topic), nil, &t)
	return t, status == http.StatusCreated, err
}

// ListTopics lists an app's topics.
func (c *Client) ListTopics(ctx context.Context, app string) ([]Topic, error) {
	var out struct {
		Topics []Topic `json:"topics"`
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/apps/"+url.PathEscape(app)+"/topics", nil, &out)
	return out.Topics, err
}

// DeleteTopic deletes a topic; its live streams end.
func (c *Client) DeleteTopic(ctx context.Context, app, topic string) error {
	_, err := c.do(ctx, http.MethodDelete, topicPath(app, topic), nil, nil)
	return err
}

// Publish publishes one JSON value (raw bytes, sent as they are) and returns
// once the server has committed it.
func (c *Client) Publish(ctx context.Context, app, topic string, message []byte) (Message, error) {
	var m Message
	_, err := c.do(ctx, http.MethodPost, topicPath(app, topic)+"/messages", bytes.NewReader(message), &m)
	return m, err
}

// PublishIdempotent publishes like Publish with an Idempotency-Key: a retry
// with the same key within 24 hours (after a timeout, say) returns the first
// publish's message and stores nothing, and replayed reports that it did.
func (c *Client) PublishIdempotent(ctx context.Context, app, topic, key string, message []byte) (m Message, replayed bool, err error) {
	h := http.Header{"Idempotency-Key": {key}}
	_, rh, err := c.doHeader(ctx, http.MethodPost, topicPath(app, topic)+"/messages", h, bytes.NewReader(message), &m)
	return m, rh.Get("Idempotent-Replayed") == "true", err
}

// BatchMessage is one message of a batch publish.
type BatchMessage struct {
	Topic string `json:"topic"`
	// Message is one JSON value, sent as it is (nil sends null).
	Message json.RawMessage `json:"message"`
	// IdempotencyKey, if not empty, makes a retry of the batch within 24
	// hours return this message's first publish instead of storing it
	// again; keys must differ within a batch.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// BatchResult is one message of a batch publish's answer.
type BatchResult struct {
	Message
	// Replayed reports that the message's idempotency key was used before:
	// this is that publish's message, and nothing was stored.
	Replayed bool `json:"replayed,omitempty"`
}

// PublishBatch publishes 1 to 1000 messages, to any topics of app, in one
// transaction: it returns once the server has committed all of them, with
// their results in the order of msgs, or an *Error (its Index naming the
// first bad message, where one is to blame) and nothing stored.
func (c *Client) PublishBatch(ctx context.Context, app string, msgs []BatchMessage) ([]BatchResult, error) {
	body, err := json.Marshal(map[string]any{"messages": msgs})
	if err != nil {
		return nil, fmt.Errorf("herald: encode batch: %w", err)
	}
	var out struct {
		Messages []BatchResult `json:"messages"`
	}
	_, err = c.do(ctx, http.MethodPost, "/v1/apps/"+url.PathEscape(app)+"/messages", bytes.NewReader(body), &out)
	return out.Messages, err
}

// History returns up to limit messages of a topic after the message id after
// ("" or "0" from the oldest kept).
func (c *Client) History(ctx context.Context, app, topic, after string, limit int) ([]Message, error) {
	var out struct {
		Messages []Message `json:"messages"`
	}
	q := url.Values{}
	if after != "" {
		q.Set("after", after)
	}
	if limit > 0 {
		q.Set("limit", fmt.Sprint(limit))
	}
	_, err := c.do(ctx, http.MethodGet, topicPath(app, topic)+"/messages?"+q.Encode(), nil, &out)
	return out.Messages, err
}

// ErrStreamEnded is returned by Stream.Next when every topic of the stream
// was deleted, or the server refused the stream for good (4xx).
var ErrStreamEnded = errors.New("herald: stream ended")

// Token is a browser token: a short-lived credential that only opens
// streams of its topics, for pages (EventSource ?access_token=).
type Token struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	Topics    []string  `json:"topics"`
}

// CreateToken mints a browser token for topics of app (manage scope or the
// admin token). ttl is a duration like "15m"; empty means the server's
// default.
func (c *Client) CreateToken(ctx context.Context, app string, topics []string, ttl string) (Token, error) {
	var t Token
	body := map[string]any{"topics": topics}
	if ttl != "" {
		body["ttl"] = ttl
	}
	_, err := c.do(ctx, http.MethodPost, "/v1/apps/"+url.PathEscape(app)+"/tokens", jsonBody(body), &t)
	return t, err
}
