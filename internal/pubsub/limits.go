package pubsub

import (
	"context"
	"fmt"

	"github.com/heraldhq/herald/internal/limit"
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

// createTopicWithin creates a topic within its app's limit, counted and
// created in one step of the store (see limit.CreateWithin).
func (s *Service) createTopicWithin(ctx context.Context, appID, name string) (store.Topic, bool, error) {
	var (
		t       store.Topic
		created bool
	)
	err := limit.CreateWithin(
		func() (int, error) {
			l, err := s.limits.Limits(ctx, appID)
			if err != nil {
				return 0, fmt.Errorf("create topic: %w", err)
			}
			return l.Topics, nil
		},
		func(max int) (err error) {
			t, created, err = s.topics.CreateTopicWithin(ctx, appID, name, max)
			if err != nil {
				return fmt.Errorf("create topic: %w", err)
			}
			return nil
		},
		func(have int) error { return s.limits.CheckTopics(ctx, appID, have) },
	)
	if err != nil {
		return store.Topic{}, false, err
	}
	return t, created, nil
}
