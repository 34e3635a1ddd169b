package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/heraldhq/herald/internal/pubsub"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/webhook"
)

// MaxDeadLetterPage is the most dead letters one request returns.
const MaxDeadLetterPage = 1000

type triggerJSON struct {
	ID    string `json:"id"`
	Topic string `json:"topic"`
	URL   string `json:"url"`
	// Secret is shown in the creation answer only.
	Secret    string    `json:"secret,omitempty"`
	State     string    `json:"state"`
	Pending   int64     `json:"pending"`
	Delivered int64     `json:"delivered"`
	Dead      int64     `json:"dead"`
	CreatedAt timestamp `json:"created_at"`
	// PreviousSecretExpiresAt is set while a rotated-out secret still
	// signs deliveries beside the current one.
	PreviousSecretExpiresAt *timestamp `json:"previous_secret_expires_at,omitempty"`
}

func newTriggerJSON(t store.TriggerStats) triggerJSON {
	state := "active"
	if t.Disabled {
		state = "disabled"
	}
	tj := triggerJSON{
		ID: t.ID, Topic: t.Topic, URL: t.URL, State: state, CreatedAt: timestamp(t.CreatedAt),
		Pending: t.Pending, Delivered: t.Delivered, Dead: t.Dead,
	}
	if t.PreviousSecret != "" && t.PreviousSecretUntil.After(time.Now()) {
		until := timestamp(t.PreviousSecretUntil)
		tj.PreviousSecretExpiresAt = &until
	}
	return tj
}

// TriggerManager manages webhook triggers and dead letters. A missing
// trigger, topic or dead letter is store.ErrNotFound; a refused URL or
// secret is one of the webhook package's errors.
type TriggerManager interface {
	Create(ctx context.Context, appID, topic, rawURL, secret string) (store.Trigger, error)
	List(ctx context.Context, appID, topic string) ([]store.TriggerStats, error)
	Update(ctx context.Context, appID, topic, id string, c webhook.TriggerChange) (store.TriggerStats, error)
	Delete(ctx context.Context, appID, topic, id string) error
	// Test delivers a test event to the trigger's URL now.
	Test(ctx context.Context, appID, topic, id string) (store.Attempt, error)
	Attempts(ctx context.Context, appID, topic, id string, limit int) ([]store.Attempt, error)
	DeadLetters(ctx context.Context, appID string, limit int) ([]store.Delivery, error)
	// Redrive queues a dead letter for delivery again.
	Redrive(ctx context.Context, appID, id string) error
}

func (a *API) triggers() (TriggerManager, error) {
	if a.cfg.Triggers == nil {
		return nil, &apiError{http.StatusNotFound, "route_not_found", "webhook triggers are not served by this API"}
	}
	return a.cfg.Triggers, nil
}

func triggerErr(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return &apiError{http.StatusNotFound, "trigger_not_found", "no such trigger on this topic"}
	}
	return err
}

func (a *API) createTrigger(w http.ResponseWriter, r *http.Request) {
	topic := r.PathValue("topic")
	var req struct {
		URL    string `json:"url"`
		Secret string `json:"secret"`
	}
	trs, err := a.triggers()
	if err == nil {
		err = pubsub.ValidateTopic(topic)
	}
	if err == nil {
		err = decodeJSON(w, r, &req)
	}
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	t, err := trs.Create(r.Context(), r.PathValue("app"), topic, req.URL, req.Secret)
	if err != nil {
		a.writeError(w, r, topicErr(topic, err))
		return
	}
	resp := newTriggerJSON(store.TriggerStats{Trigger: t})
	resp.Secret = t.Secret
	a.writeJSON(w, http.StatusCreated, resp)
}

func (a *API) listTriggers(w http.ResponseWriter, r *http.Request) {
	topic := r.PathValue("topic")
	trs, err := a.triggers()
	if err == nil {
		err = pubsub.ValidateTopic(topic)
	}
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	ts, err := trs.List(r.Context(), r.PathValue("app"), topic)
	if err != nil {
		a.writeError(w, r, topicErr(topic, err))
		return
	}
	resp := make([]triggerJSON, 0, len(ts))
	for _, t := range ts {
		resp = append(resp, newTriggerJSON(t))
	}
	a.writeJSON(w, http.StatusOK, map[string]any{"triggers": resp})
}

func (a *API) deleteTrigger(w http.ResponseWriter, r *http.Request) {
	trs, err := a.triggers()
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := trs.Delete(r.Context(), r.PathValue("app"), r.PathValue("topic"), r.PathValue("id")); err != nil {
		a.writeError(w, r, triggerErr(err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type deadLetterJSON struct {
	ID        string          `json:"id"`
	TriggerID string          `json:"trigger_id"`
	Topic     string          `json:"topic"`
	MessageID string          `json:"message_id"`
	Message   json.RawMessage `json:"message"`
	URL       string          `json:"url"`
	Attempts  int             `json:"attempts"`
	// LastStatus is null when the last attempt got no answer.
	LastStatus *int      `json:"last_status"`
	LastError  string    `json:"last_error"`
	CreatedAt  timestamp `json:"created_at"`
	FailedAt   timestamp `json:"failed_at"`
}

func (a *API) listDeadLetters(w http.ResponseWriter, r *http.Request) {
	trs, err := a.triggers()
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	limit := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > MaxDeadLetterPage {
			a.writeError(w, r, fmt.Errorf("%w: limit must be 1 to %d", pubsub.ErrInvalid, MaxDeadLetterPage))
			return
		}
		limit = v
	}
	ds, err := trs.DeadLetters(r.Context(), r.PathValue("app"), limit)
	if err != nil {
		a.writeError(w, r, appErr(err))
		return
	}
	resp := make([]deadLetterJSON, 0, len(ds))
	for _, d := range ds {
		dl := deadLetterJSON{
			ID: d.ID, TriggerID: d.TriggerID, Topic: d.Topic, MessageID: strconv.FormatUint(d.MessageID, 10),
			Message: d.Body, URL: d.URL, Attempts: d.Attempts, LastError: d.LastError,
			CreatedAt: timestamp(d.CreatedAt), FailedAt: timestamp(d.UpdatedAt),
		}
		if d.LastStatus != 0 {
			dl.LastStatus = &d.LastStatus
		}
		resp = append(resp, dl)
	}
	a.writeJSON(w, http.StatusOK, map[string]any{"dead_letters": resp})
}

func (a *API) redrive(w http.ResponseWriter, r *http.Request) {
	trs, err := a.triggers()
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	id := r.PathValue("id")
	if err := trs.Redrive(r.Context(), r.PathValue("app"), id); err != nil {
		switch {
		case errors.Is(err, store.ErrNotFound):
			err = &apiError{http.StatusNotFound, "dead_letter_not_found", "no delivery " + strconv.Quote(id) + " in this app"}
		case errors.Is(err, store.ErrDelivered):
			err = &apiError{http.StatusConflict, "already_delivered", "delivery " + strconv.Quote(id) +
				" was delivered already (after a redrive or a retry): there is nothing to redrive"}
		case errors.Is(err, store.ErrConflict):
			err = &apiError{http.StatusConflict, "trigger_disabled", "the trigger of delivery " + strconv.Quote(id) +
				" is disabled (its receiver answered 410 Gone): create a new trigger for that URL"}
		}
		a.writeError(w, r, err)
		return
	}
	a.writeJSON(w, http.StatusAccepted, map[string]string{"id": id})
}
