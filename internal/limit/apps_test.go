package limit_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/limit"
	"github.com/heraldhq/herald/internal/store"
)

func TestEffectiveLimitsMergeOwnOverDefaults(t *testing.T) {
	t.Parallel()
	d := store.AppLimits{Streams: 100, Topics: 50, PublishRate: 10}
	require.Equal(t, store.AppLimits{Streams: 100, Topics: 50, PublishRate: 10, PublishBurst: 10},
		limit.Effective(store.AppLimits{}, d), "no own limits: the defaults, with a second's burst")
	require.Equal(t, store.AppLimits{Streams: 5, Topics: 0, PublishRate: 2.5, PublishBurst: 7},
		limit.Effective(store.AppLimits{Streams: 5, Topics: -1, PublishRate: 2.5, PublishBurst: 7}, d),
		"own limits win; a negative one is unlimited (0)")
	require.Equal(t, store.AppLimits{Streams: 100, Topics: 50},
		limit.Effective(store.AppLimits{PublishRate: -1}, d), "an unlimited rate has no burst")
}

func TestAppsEnforcesEachAppApart(t *testing.T) {
	t.Parallel()
	own := map[string]store.AppLimits{"small": {Streams: 1, Topics: 2, PublishRate: 0.001, PublishBurst: 3}}
	var refused []string
	apps := limit.NewApps(limit.AppsOptions{
		Defaults:    store.AppLimits{Streams: 1000},
		LookupFunc:  func(_ context.Context, app string) (store.AppLimits, error) { return own[app], nil },
		RefusedFunc: func(kind string) { refused = append(refused, kind) },
	})
	ctx := t.Context()

	release, err := apps.AcquireStream(ctx, "small")
	require.NoError(t, err)
	_, err = apps.AcquireStream(ctx, "small")
	var r *limit.Refused
	require.True(t, errors.As(err, &r))
	require.Equal(t, limit.KindStreams, r.Kind)
	require.Equal(t, float64(1), r.Max)
	require.Positive(t, r.RetryAfter)
	_, err = apps.AcquireStream(ctx, "big")
	require.NoError(t, err, "another app is not touched")
	release()
	_, err = apps.AcquireStream(ctx, "small")
	require.NoError(t, err, "a released slot is free again")

	for range 3 {
		require.NoError(t, apps.AllowPublish(ctx, "small", 1), "the burst")
	}
	err = apps.AllowPublish(ctx, "small", 1)
	require.True(t, errors.As(err, &r))
	require.Equal(t, limit.KindPublishRate, r.Kind)
	require.Greater(t, r.RetryAfter.Seconds(), 100.0, "a token comes every 1000 s")
	require.NoError(t, apps.AllowPublish(ctx, "big", 1000), "no rate by default")

	require.NoError(t, apps.CheckTopics(ctx, "small", 1))
	require.ErrorAs(t, apps.CheckTopics(ctx, "small", 2), &r)
	require.Equal(t, limit.KindTopics, r.Kind)

	require.Equal(t, []string{limit.KindStreams, limit.KindPublishRate, limit.KindTopics}, refused)

	own["small"] = store.AppLimits{Streams: 5}
	apps.Forget("small")
	_, err = apps.AcquireStream(ctx, "small")
	require.NoError(t, err, "new limits apply once forgotten")
	require.NoError(t, apps.AllowPublish(ctx, "small", 1), "and the old rate is gone")
}
