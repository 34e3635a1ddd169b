// Package broadcast is the realtime fan-out seam between the publish side
// (pubsub.Service) and the subscribe side (the SSE handler).
//
// It holds the contract (Broadcaster, Event, Subscription) and the in-process
// implementations: Memory, a ring per (app, topic) with a cursor per
// subscriber, and Noop. A cluster implementation lives in a subpackage and
// satisfies the same interface, so neither caller knows which one it holds.
//
// Delivery is best-effort and at-most-once: this is the realtime path, not the
// durable one. A slow subscriber loses its oldest events and is told how many
// (see Subscription.Receive); it never slows the publisher or anyone else.
package broadcast

import (
	"context"
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/internal/event"
)

// ErrTopicDropped is returned by Subscription.Receive once the subscription's
// topic has been dropped (DropTopic) and every event published before the drop
// has been received.
var ErrTopicDropped = errors.New("broadcast: topic dropped")

// ErrClosed is returned by Subscription.Receive after the subscription's
// context ended, and by Subscribe on a broadcaster that has been closed.
var ErrClosed = errors.New("broadcast: closed")

// ErrUnavailable is returned by Subscribe when a backend cannot register the
// subscriber (for example a cluster backend whose listener is down). The
// in-process implementation never returns it.
var ErrUnavailable = errors.New("broadcast: unavailable")

// Event is one message on its way to live subscribers. Events are shared by
// every subscriber of a topic and must not be modified after Publish. It is
// event.Event, which also holds the event's wire forms.
type Event = event.Event

// Broadcaster fans events out to live subscribers of (app, topic).
//
// Implementations are safe for concurrent use. Publish never blocks on a
// subscriber: each subscriber can fall at most a bounded number of events
// behind, after which it loses the oldest ones and is told how many it lost.
// Events published to one topic reach each subscriber in publish order.
type Broadcaster interface {
	// Subscribe registers a subscriber of (app, topic) that receives every
	// event published after Subscribe returns. The subscription lives until
	// ctx ends or the topic is dropped; there is no Unsubscribe to forget.
	// wake is called whenever the subscription may have something to
	// receive (events, a lag, or its end). It is called from the
	// publisher's goroutine, possibly with the broadcaster's locks held,
	// and once per event (calls are not folded): it must return at once,
	// never block and never call the broadcaster. It may be shared by
	// several subscriptions, which is how one stream waits on many topics;
	// WakeChan makes one from a channel. Subscribe fails with
	// ErrUnavailable when the backend cannot register the subscriber.
	Subscribe(ctx context.Context, app, topic string, wake func()) (*Subscription, error)

	// Publish hands ev to the current subscribers of (ev.App, ev.Topic). It
	// is not durable, and with no live subscribers it is a no-op. It never
	// blocks on a subscriber.
	Publish(ctx context.Context, ev *Event)

	// DropTopic ends every subscription of (app, topic): each receives the
	// events published before the drop and then ErrTopicDropped. Later
	// subscribers of the same name start afresh.
	DropTopic(ctx context.Context, app, topic string)
}

// Service is a Broadcaster with its lifecycle: what the composition root
// holds, so that it closes, asks readiness of and registers the metrics of
// whichever broadcaster configuration picked without naming its type.
type Service interface {
	Broadcaster
	// Ready reports whether the broadcaster delivers what other nodes
	// publish; an error makes the node not ready.
	Ready() error
	// Collectors returns the broadcaster's metrics.
	Collectors() []prometheus.Collector
	// Close stops the broadcaster's goroutines. Subscriptions end with
	// their own contexts.
	Close() error
}

// WakeChan returns a wake function (see Broadcaster.Subscribe) that makes a
// non-blocking send on ch, which must have a buffer of at least one: a wake
// that finds one already pending is folded into it, and the receiver then
// sees everything when it calls Receive.
func WakeChan(ch chan<- struct{}) func() {
	return func() {
		select {
		case ch <- struct{}{}:
		default: // a wake is already pending
		}
	}
}
