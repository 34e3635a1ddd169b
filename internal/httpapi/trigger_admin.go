package httpapi

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/heraldhq/herald/internal/pubsub"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/webhook"
)

// updateTrigger enables or disables a trigger, or rotates its secret.
func (a *API) updateTrigger(w http.ResponseWriter, r *http.Request) {
	trs, err := a.triggers()
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	var req struct {
		State        *string `json:"state"`
		RotateSecret bool    `json:"rotate_secret"`
		Secret       string  `json:"secret"`
		// PreviousSecretTTL is how long the old secret keeps signing.
		PreviousSecretTTL *string `json:"previous_secret_ttl"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	var c webhook.TriggerChange
	if req.State != nil {
		switch *req.State {
		case "active":
			c.Disabled = new(bool)
		case "disabled":
			c.Disabled = new(bool)
			*c.Disabled = true
		default:
			a.writeError(w, r, fmt.Errorf(`%w: state is "active" or "disabled"`, pubsub.ErrInvalid))
			return
		}
	}
	c.RotateSecret = req.RotateSecret || req.Secret != ""
	c.Secret = req.Secret
	c.Overlap = webhook.DefaultSecretOverlap
	if req.PreviousSecretTTL != nil {
		if !c.RotateSecret {
			a.writeError(w, r, fmt.Errorf("%w: previous_secret_ttl goes with a rotation (rotate_secret or secret)", pubsub.ErrInvalid))
			return
		}
		d, err := time.ParseDuration(*req.PreviousSecretTTL)
		if err != nil || d < 0 || d > webhook.MaxSecretOverlap {
			a.writeError(w, r, fmt.Errorf(`%w: previous_secret_ttl is a duration from "0s" to "168h", like "24h"`, pubsub.ErrInvalid))
			return
		}
		c.Overlap = d
	}
	if c.Disabled == nil && !c.RotateSecret {
		a.writeError(w, r, fmt.Errorf(`%w: nothing to change: give "state", or "rotate_secret":true (or a "secret")`, pubsub.ErrInvalid))
		return
	}
	t, err := trs.Update(r.Context(), r.PathValue("app"), r.PathValue("topic"), r.PathValue("id"), c)
	if err != nil {
		a.writeError(w, r, triggerErr(err))
		return
	}
	resp := newTriggerJSON(t)
	if c.RotateSecret {
		// The new secret is shown in this answer only, as at creation.
		resp.Secret = t.Secret
		w.Header().Set("Cache-Control", "no-store")
	}
	a.writeJSON(w, http.StatusOK, resp)
}

type attemptJSON struct {
	At         timestamp `json:"at"`
	DeliveryID string    `json:"delivery_id"`
	// Status is null when no answer came (then Error says why).
	Status    *int       `json:"status"`
	Error     string     `json:"error"`
	LatencyMS float64    `json:"latency_ms"`
	NextRetry *timestamp `json:"next_retry_at"`
	Test      bool       `json:"test"`
	Delivered bool       `json:"delivered"`
}

func newAttemptJSON(at store.Attempt) attemptJSON {
	aj := attemptJSON{
		At: timestamp(at.At), DeliveryID: at.DeliveryID, Error: at.Error, Test: at.Test,
		LatencyMS: float64(at.Duration.Microseconds()) / 1000, Delivered: at.Error == "",
	}
	if at.Status != 0 {
		s := at.Status
		aj.Status = &s
	}
	if !at.NextAt.IsZero() {
		n := timestamp(at.NextAt)
		aj.NextRetry = &n
	}
	return aj
}

// testTrigger sends one signed test delivery now and answers its outcome.
func (a *API) testTrigger(w http.ResponseWriter, r *http.Request) {
	trs, err := a.triggers()
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	at, err := trs.Test(r.Context(), r.PathValue("app"), r.PathValue("topic"), r.PathValue("id"))
	if err != nil {
		a.writeError(w, r, triggerErr(err))
		return
	}
	a.writeJSON(w, http.StatusOK, newAttemptJSON(at))
}

func (a *API) listAttempts(w http.ResponseWriter, r *http.Request) {
	trs, err := a.triggers()
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	limit := webhook.MaxAttempts
	if s := r.URL.Query().Get("limit"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > webhook.MaxAttempts {
			a.writeError(w, r, fmt.Errorf("%w: limit must be 1 to %d", pubsub.ErrInvalid, webhook.MaxAttempts))
			return
		}
		limit = v
	}
	as, err := trs.Attempts(r.Context(), r.PathValue("app"), r.PathValue("topic"), r.PathValue("id"), limit)
	if err != nil {
		a.writeError(w, r, triggerErr(err))
		return
	}
	resp := make([]attemptJSON, 0, len(as))
	for _, at := range as {
		resp = append(resp, newAttemptJSON(at))
	}
	a.writeJSON(w, http.StatusOK, map[string]any{"attempts": resp})
}
