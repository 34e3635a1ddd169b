package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Trigger is a webhook trigger: every message published to Topic is
// POSTed to URL, signed the Standard Webhooks way.
type Trigger struct {
	ID    string `json:"id"`
	Topic string `json:"topic"`
	URL   string `json:"url"`
	// Secret is the signing secret ("whsec_…"), returned by CreateTrigger
	// only.
	Secret string `json:"secret,omitempty"`
	// State is "active" or "disabled" (the receiver answered 410 Gone).
	State string `json:"state"`
	// Pending, Delivered and Dead count the trigger's deliveries (delivered
	// ones until retention prunes them).
	Pending   int64     `json:"pending"`
	Delivered int64     `json:"delivered"`
	Dead      int64     `json:"dead"`
	CreatedAt time.Time `json:"created_at"`
	// PreviousSecretExpiresAt is set while a rotated-out secret still
	// signs deliveries beside Secret.
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at,omitempty"`
}

// DeadLetter is a delivery that failed its last attempt.
type DeadLetter struct {
	// ID is the delivery's webhook-id, kept by a redrive.
	ID        string          `json:"id"`
	TriggerID string          `json:"trigger_id"`
	Topic     string          `json:"topic"`
	MessageID string          `json:"message_id"`
	Message   json.RawMessage `json:"message"`
	URL       string          `json:"url"`
	Attempts  int             `json:"attempts"`
	// LastStatus is the last answer's HTTP status, nil when none came.
	LastStatus *int      `json:"last_status"`
	LastError  string    `json:"last_error"`
	CreatedAt  time.Time `json:"created_at"`
	FailedAt   time.Time `json:"failed_at"`
}

func triggersPath(app, topic string) string { return topicPath(app, topic) + "/triggers" }

// CreateTrigger makes every message published to topic be POSTed to
// webhookURL (manage scope). An empty secret has the server generate one;
// either way the answer holds it, and only this answer.
func (c *Client) CreateTrigger(ctx context.Context, app, topic, webhookURL, secret string) (Trigger, error) {
	var t Trigger
	body := map[string]string{"url": webhookURL}
	if secret != "" {
		body["secret"] = secret
	}
	_, err := c.do(ctx, http.MethodPost, triggersPath(app, topic), jsonBody(body), &t)
	return t, err
}

// ListTriggers lists a topic's triggers with their state and counts.
func (c *Client) ListTriggers(ctx context.Context, app, topic string) ([]Trigger, error) {
	var out struct {
		Triggers []Trigger `json:"triggers"`
	}
	_, err := c.do(ctx, http.MethodGet, triggersPath(app, topic), nil, &out)
	return out.Triggers, err
}

// DeleteTrigger deletes a trigger and its deliveries, dead letters
// included.
func (c *Client) DeleteTrigger(ctx context.Context, app, topic, id string) error {
	_, err := c.do(ctx, http.MethodDelete, triggersPath(app, topic)+"/"+url.PathEscape(id), nil, nil)
	return err
}

// DeadLetters lists up to limit of an app's dead letters, newest first
// (limit 0: the server's default, 100).
func (c *Client) DeadLetters(ctx context.Context, app string, limit int) ([]DeadLetter, error) {
	var out struct {
		DeadLetters []DeadLetter `json:"dead_letters"`
	}
	path := "/v1/apps/" + url.PathEscape(app) + "/dead-letters"
	if limit > 0 {
		path += fmt.Sprintf("?limit=%d", limit)
	}
	_, err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out.DeadLetters, err
}

// Redrive queues a dead letter for delivery again, with its id and a fresh
// retry schedule. Redriving one that is already queued or delivered does
// nothing, so a retried call delivers once.
func (c *Client) Redrive(ctx context.Context, app, id string) error {
	_, err := c.do(ctx, http.MethodPost, "/v1/apps/"+url.PathEscape(app)+"/dead-letters/"+url.PathEscape(id)+"/redrive", nil, nil)
	return err
}
