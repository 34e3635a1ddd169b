package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// EventKeyRevoked is the type of the event that ends a stream whose key (or
// the key that minted its browser token) was revoked. A reconnect with the
// same credential is refused.
const EventKeyRevoked = "key_revoked"

// KeyInfo describes an app key without its secret.
type KeyInfo struct {
	ID     string   `json:"id"`
	Scopes []string `json:"scopes"`
	// Key is the full key, set only in CreateKey's answer: it is shown
	// once and never again.
	Key       string    `json:"key,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// LastUsedAt is when the key was last used, to the minute; nil when
	// never (or not in the last minute or so of a node's life).
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
}

func keysPath(app string) string { return "/v1/apps/" + url.PathEscape(app) + "/keys" }

// ListKeys lists an app's valid keys (manage scope or the admin token).
func (c *Client) ListKeys(ctx context.Context, app string) ([]KeyInfo, error) {
	var out struct {
		Keys []KeyInfo `json:"keys"`
	}
	_, err := c.do(ctx, http.MethodGet, keysPath(app), nil, &out)
	return out.Keys, err
}

// CreateKey issues a key with scopes: a manage key may issue at most its
// own scopes, the admin token any. The answer's Key is the only copy.
func (c *Client) CreateKey(ctx context.Context, app string, scopes []string) (KeyInfo, error) {
	var k KeyInfo
	_, err := c.do(ctx, http.MethodPost, keysPath(app), jsonBody(map[string][]string{"scopes": scopes}), &k)
	return k, err
}

// RevokeKey revokes a key: within a second it works on no node, and streams
// opened with it (or with browser tokens it minted) end.
func (c *Client) RevokeKey(ctx context.Context, app, id string) error {
	_, err := c.do(ctx, http.MethodDelete, keysPath(app)+"/"+url.PathEscape(id), nil, nil)
	return err
}
