package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// TriggerUpdate is what UpdateTrigger changes; zero fields change nothing.
type TriggerUpdate struct {
	// State is "active" (re-enable: pending deliveries resume) or
	// "disabled"; empty leaves it.
	State string `json:"state,omitempty"`
	// RotateSecret replaces the secret with Secret, or a generated one.
	RotateSecret bool   `json:"rotate_secret,omitempty"`
	Secret       string `json:"secret,omitempty"`
	// PreviousSecretTTL is how long the old secret keeps signing beside
	// the new one ("24h" when empty; "0s" stops it at once).
	PreviousSecretTTL string `json:"previous_secret_ttl,omitempty"`
}

// Attempt is one attempt at a delivery, from a trigger's attempts log.
type Attempt struct {
	At         time.Time `json:"at"`
	DeliveryID string    `json:"delivery_id"`
	// Status is nil when no answer came; Error then says why.
	Status    *int       `json:"status"`
	Error     string     `json:"error"`
	LatencyMS float64    `json:"latency_ms"`
	NextRetry *time.Time `json:"next_retry_at"`
	Test      bool       `json:"test"`
	Delivered bool       `json:"delivered"`
}

func triggerPath(app, topic, id string) string {
	return triggersPath(app, topic) + "/" + url.PathEscape(id)
}

// UpdateTrigger enables, disables or rotates the secret of a trigger. The
// answer holds the new secret when it rotated one, and only then.
func (c *Client) UpdateTrigger(ctx context.Context, app, topic, id string, u TriggerUpdate) (Trigger, error) {
	var t Trigger
	_, err := c.do(ctx, http.MethodPatch, triggerPath(app, topic, id), jsonBody(u), &t)
	return t, err
}

// TestTrigger sends one signed test delivery to the trigger's URL now and
// returns its outcome.
func (c *Client) TestTrigger(ctx context.Context, app, topic, id string) (Attempt, error) {
	var a Attempt
	_, err := c.do(ctx, http.MethodPost, triggerPath(app, topic, id)+"/test", nil, &a)
	return a, err
}

// Attempts returns up to limit (0: 100) of a trigger's latest attempts,
// newest first.
func (c *Client) Attempts(ctx context.Context, app, topic, id string, limit int) ([]Attempt, error) {
	p := triggerPath(app, topic, id) + "/attempts"
	if limit > 0 {
		p += "?limit=" + strconv.Itoa(limit)
	}
	var out struct {
		Attempts []Attempt `json:"attempts"`
	}
	_, err := c.do(ctx, http.MethodGet, p, nil, &out)
	return out.Attempts, err
}
