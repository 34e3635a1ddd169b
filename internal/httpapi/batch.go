package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/heraldhq/herald/internal/pubsub"
	"github.com/heraldhq/herald/internal/store"
)

// batchItemJSON is one message of a batch publish request.
type batchItemJSON struct {
	Topic string `json:"topic"`
	// Message is nil when the item has none; JSON null is "null", a
	// message like any other.
	Message        json.RawMessage `json:"message"`
	IdempotencyKey string          `json:"idempotency_key"`
}

// publishBatch is POST /v1/apps/{app}/messages: up to pubsub.MaxBatch
// messages, to any topics of the app, stored in one transaction or not at
// all. An error caused by one message names it with "index".
func (a *API) publishBatch(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(a.cfg.MaxBatchBytes)))
	if tooBig := (*http.MaxBytesError)(nil); errors.As(err, &tooBig) {
		a.writeError(w, r, &apiError{http.StatusRequestEntityTooLarge, "batch_too_large",
			fmt.Sprintf("batch body larger than the limit of %d bytes (--max-batch-bytes); split it", a.cfg.MaxBatchBytes)})
		return
	}
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	var req struct {
		Messages []batchItemJSON `json:"messages"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		a.writeError(w, r, fmt.Errorf("%w: request body: %s", pubsub.ErrInvalid, err.Error()))
		return
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		a.writeError(w, r, fmt.Errorf("%w: request body: one JSON object expected, more follows", pubsub.ErrInvalid))
		return
	}
	appID := r.PathValue("app")
	ps := make([]pubsub.Publication, len(req.Messages))
	for i, m := range req.Messages {
		if m.Message == nil {
			a.writeError(w, r, &store.ItemError{Index: i, Err: fmt.Errorf("%w: no \"message\" field", pubsub.ErrInvalid)})
			return
		}
		ps[i] = pubsub.Publication{AppID: appID, Topic: m.Topic, Body: m.Message, IdempotencyKey: m.IdempotencyKey}
	}
	if a.cfg.Limits != nil {
		// A batch spends one token of the app's publish rate per message.
		if err := a.cfg.Limits.AllowPublish(r.Context(), appID, len(ps)); err != nil {
			a.writeError(w, r, appErr(err))
			return
		}
	}
	out, err := a.cfg.Publisher.PublishBatch(r.Context(), ps)
	if err != nil {
		a.writeError(w, r, batchErr(req.Messages, err))
		return
	}
	// {"messages":[…]}, each message as a single publish answers, and
	// "replayed":true on one whose idempotency key an earlier publish
	// used: that publish's message, with nothing stored.
	resp := append(make([]byte, 0, 16+96*len(out)), `{"messages":[`...)
	stored := 0
	for i, p := range out {
		if !p.Replayed {
			stored++
		}
		if i > 0 {
			resp = append(resp, ',')
		}
		resp = appendPublished(resp, p.Message, p.Replayed)
	}
	if a.cfg.Stats != nil {
		a.cfg.Stats.Published(appID, stored)
	}
	a.writeJSONBytes(w, http.StatusAccepted, append(resp, "]}\n"...))
}

// batchErr gives an error of one message of a batch the answer a single
// publish would get, keeping its index.
func batchErr(items []batchItemJSON, err error) error {
	var ie *store.ItemError
	if !errors.As(err, &ie) || ie.Index < 0 || ie.Index >= len(items) {
		return err
	}
	inner := ie.Err
	switch {
	case errors.Is(inner, store.ErrNotFound):
		inner = topicErr(items[ie.Index].Topic, inner)
	case errors.Is(inner, store.ErrConflict):
		inner = &apiError{http.StatusConflict, "idempotency_key_reused",
			"its idempotency key was used in the last 24 hours for a publish to another topic"}
	}
	return &store.ItemError{Index: ie.Index, Err: inner}
}
