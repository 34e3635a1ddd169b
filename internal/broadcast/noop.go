package broadcast

import "context"

// Noop is a Broadcaster that delivers nothing: Publish and DropTopic do
// nothing, and a subscription receives no event until its context ends. It
// serves bootstrap and tests that exercise everything but delivery.
type Noop struct{}

var _ Broadcaster = Noop{}

// Subscribe implements Broadcaster.
func (Noop) Subscribe(ctx context.Context, _, _ string, wake func()) (*Subscription, error) {
	s := &Subscription{wake: wake, index: -1}
	context.AfterFunc(ctx, func() {
		s.cancelled.Store(true)
		s.notify()
	})
	return s, nil
}

// Publish implements Broadcaster; it does nothing.
func (Noop) Publish(context.Context, *Event) {}

// DropTopic implements Broadcaster; it does nothing.
func (Noop) DropTopic(context.Context, string, string) {}
