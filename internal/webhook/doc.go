// Package webhook is Herald's durable delivery path: it sends every message
// of a topic with triggers to the triggers' URLs, at least once, signed the
// Standard Webhooks way, and keeps at it on a schedule until the receiver
// takes it or the delivery is dead (a dead letter, which can be redriven).
//
// The outbox itself (triggers, deliveries, leases) is the store's: a
// publish enqueues one delivery per active trigger in its own transaction
// (store.Outbox). This package owns what happens next.
//
// # Parts
//
//   - Signing (Sign, NewSecret, ParseSecret): webhook-id is the delivery id,
//     the same on every attempt and redrive; webhook-timestamp is the
//     attempt's; webhook-signature is "v1," + base64 HMAC-SHA256 of
//     "id.timestamp.body" under the secret's key.
//   - The body (Body) is the message event's JSON, byte for byte the data
//     of its SSE frame (event.AppendData).
//   - Guard refuses URLs that reach loopback, private, link-local, CGNAT,
//     multicast or unspecified addresses (unless allowed): at trigger
//     creation (CheckURL, after resolving the name) and again on every
//     connection (DialControl, on the address actually dialled).
//   - Sender makes one attempt: no redirects followed, a timeout, at most
//     MaxResponseBytes of the answer read.
//   - Dispatcher claims due deliveries under a lease, runs a bounded number
//     of attempts at once, and settles each: delivered (2xx), dead and the
//     trigger disabled (410), or retried on the schedule (anything else),
//     dead after the last attempt.
//   - Triggers is the service behind the trigger and dead-letter API.
//
// # Concurrency
//
// Dispatcher.Start runs one claim loop and at most Concurrency attempt
// goroutines; Close stops claiming, waits for the attempts (as long as its
// context allows, abandoning the rest to their leases), and returns once
// every goroutine has ended. Sender, Guard and Triggers are safe for
// concurrent use and start no goroutines.
//
// # Invariants
//
//   - A lease is longer than the attempt timeout, so no two attempts at one
//     delivery overlap while both dispatchers are alive; a dispatcher that
//     dies mid-attempt leaves its delivery to be claimed again when the
//     lease runs out (the receiver may then see it twice: at least once).
//   - An outcome settles only under the lease it was claimed with; a late
//     one is dropped (store.ErrConflict) and counted.
//   - Nothing here is on the publish path: a slow receiver costs one of the
//     dispatcher's slots, never a publisher's or a stream's time.
package webhook

import "errors"

// ErrInvalidURL means a trigger URL is malformed: not an absolute http or
// https URL with a host. Its message says why.
var ErrInvalidURL = errors.New("invalid webhook url")

// ErrInvalidSecret means a signing secret is not "whsec_" followed by the
// standard base64 of 24 to 64 bytes.
var ErrInvalidSecret = errors.New("invalid webhook secret")

// ErrTooManyTriggers means a topic already has MaxTriggersPerTopic
// triggers.
var ErrTooManyTriggers = errors.New("too many triggers on this topic")
