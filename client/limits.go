package client

import (
	"context"
	"net/http"
	"net/url"
)

// Limits are an app's own limits. A nil field is left to the server's
// default; -1 is unlimited.
type Limits struct {
	Streams      *int     `json:"streams,omitempty"`
	PublishRate  *float64 `json:"publish_rate,omitempty"`
	PublishBurst *int     `json:"publish_burst,omitempty"`
	Topics       *int     `json:"topics,omitempty"`
	Triggers     *int     `json:"triggers,omitempty"`
}

// AppLimits is the answer to SetAppLimits: the app's own limits and those
// in force (the own over the server's defaults; 0 there is unlimited).
type AppLimits struct {
	ID        string `json:"id"`
	Limits    Limits `json:"limits"`
	Effective Limits `json:"effective"`
}

// SetAppLimits replaces an app's own limits (admin token only).
func (c *Client) SetAppLimits(ctx context.Context, app string, l Limits) (AppLimits, error) {
	var out AppLimits
	_, err := c.do(ctx, http.MethodPatch, "/v1/apps/"+url.PathEscape(app), jsonBody(map[string]Limits{"limits": l}), &out)
	return out, err
}
