package pubsub

import (
	"context"
	"errors"
	"fmt"

	"github.com/heraldhq/herald/internal/store"
)

// TopicLimits is each app's topic limit, as the service enforces it;
// limit.Apps is one. It must be safe for concurrent use.
type TopicLimits interface {
	// Limits returns an app's limits in force; Topics <= 0 is unlimited.
	Limits(ctx context.Context, appID string) (store.AppLimits, error)
	// CheckTopics returns the error that refuses a create to an app
	// holding have topics, or nil if it may create one.
	CheckTopics(ctx context.Context, appID string, have int) error
}

// topicCreator is the store creating a topic within a limit (see
// store.LimitStore).
type topicCreator interface {
	CreateTopicWithin(ctx context.Context, appID, name string, max int) (store.Topic, bool, error)
}

// createTopicWithin creates a topic within its app's limit. Counting and
// creating are one step of the store: creates that race (here or on
// other nodes) cannot pass the limit together, as a count read before
// the create would let them.
func (s *Service) createTopicWithin(ctx context.Context, appID, name string) (store.Topic, bool, error) {
	// The limit read may be older than the create that refuses; a refusal
	// the limits do not confirm (the limit was raised) is tried again.
	for attempt := 1; ; attempt++ {
		l, err := s.limits.Limits(ctx, appID)
		if err != nil {
			return store.Topic{}, false, fmt.Errorf("create topic: %w", err)
		}
		t, created, err := s.topics.CreateTopicWithin(ctx, appID, name, l.Topics)
		if !errors.Is(err, store.ErrLimitReached) {
			if err != nil {
				return store.Topic{}, false, fmt.Errorf("create topic: %w", err)
			}
			return t, created, nil
		}
		if refused := s.limits.CheckTopics(ctx, appID, l.Topics); refused != nil {
			return store.Topic{}, false, refused
		}
		if attempt == 3 {
			return store.Topic{}, false, fmt.Errorf("create topic: %w", err)
		}
	}
}
