package storetest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/store"
)

func testPublish(t *testing.T, setup setupFunc) {
	t.Helper()

	t.Run("AssignsIDsPerTopic", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		createTopic(t, b, app.ID, "a")
		createTopic(t, b, app.ID, "b")

		// Interleaved: each topic counts on its own.
		var gotA, gotB []store.Message
		for range 3 {
			gotA = append(gotA, publish(t, b, app.ID, "a", `"a"`))
			gotB = append(gotB, publish(t, b, app.ID, "b", `"b"`))
		}
		gotA = append(gotA, publish(t, b, app.ID, "a", `"a"`))
		require.Equal(t, []uint64{1, 2, 3, 4}, IDs(gotA))
		require.Equal(t, []uint64{1, 2, 3}, IDs(gotB))

		requireMessages(t, gotA, history(t, b, app.ID, "a"))
		requireMessages(t, gotB, history(t, b, app.ID, "b"))
		topic, err := b.st.GetTopic(b.ctx, app.ID, "a")
		require.NoError(t, err)
		require.Equal(t, uint64(4), topic.LastID)
	})

	t.Run("UnknownTopicOrAppIsNotFoundAndStoresNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		createTopic(t, b, app.ID, "real")
		called := false
		committed := func(store.Message) { called = true }

		_, err := b.st.Publish(b.ctx, store.PublishRequest{AppID: app.ID, Topic: "missing", Body: []byte(`1`), CommittedFunc: committed})
		requireNotFound(t, err)
		_, err = b.st.Publish(b.ctx, store.PublishRequest{AppID: "no-such-app", Topic: "real", Body: []byte(`1`), CommittedFunc: committed})
		requireNotFound(t, err)
		require.False(t, called, "CommittedFunc called for a failed publish")

		_, err = b.st.GetTopic(b.ctx, app.ID, "missing")
		requireNotFound(t, err)
		require.Empty(t, history(t, b, app.ID, "real"))
		require.Equal(t, uint64(1), publish(t, b, app.ID, "real", `1`).ID)
	})

	t.Run("BodyRoundTripsByteExact", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		createTopic(t, b, app.ID, "bodies")
		bodies := []string{
			`{}`,
			`null`,
			`0`,
			`1.000000000000000000000000000001`,
			`-1e400`,
			`"héllo wörld ✓ 日本語 🎉"`,
			"\"line\u2028separator\u2029paragraph\"",
			`"escaped \u2028 \u2029"`,
			`"escaped nul \u0000 and \u0000\u0000"`,
			`"quotes \" backslash \\ slash \/ tab \t newline \n cr \r"`,
			`"<script>alert(1)</script>"`,
			`{"b":1,"a":2,"a":3}`,
			`[1,"two",{"three":[3]},null,true,false]`,
			`"` + strings.Repeat("x", 64<<10) + `"`,
		}
		var published []store.Message
		for _, body := range bodies {
			published = append(published, publish(t, b, app.ID, "bodies", body))
		}
		got := history(t, b, app.ID, "bodies")
		require.Len(t, got, len(bodies))
		for i, body := range bodies {
			require.Equal(t, body, string(got[i].Body), "body %d", i)
		}
		requireMessages(t, published, got)
	})

	t.Run("PublishedAtIsUTCAndNonDecreasing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		createTopic(t, b, app.ID, "clock")
		var prev time.Time
		for i := range 50 {
			msg := publish(t, b, app.ID, "clock", fmt.Sprint(i))
			requireUTC(t, msg.PublishedAt)
			require.WithinDuration(t, time.Now(), msg.PublishedAt, time.Minute)
			require.False(t, msg.PublishedAt.Before(prev), "message %d published at %v, before %v", msg.ID, msg.PublishedAt, prev)
			prev = msg.PublishedAt
		}
	})

	t.Run("CommittedFuncSeesTheStoredMessage", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		createTopic(t, b, app.ID, "cb")
		var seen []store.Message
		for i := range 3 {
			msg, err := b.st.Publish(b.ctx, store.PublishRequest{
				AppID: app.ID, Topic: "cb", Body: []byte(fmt.Sprint(i)),
				CommittedFunc: func(m store.Message) { seen = append(seen, m) },
			})
			require.NoError(t, err)
			// Called once, before Publish returned, with the same message.
			require.Len(t, seen, i+1)
			requireMessage(t, msg, seen[i])
		}
		requireMessages(t, seen, history(t, b, app.ID, "cb"))
	})

	t.Run("CanceledContextStoresNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		createTopic(t, b, app.ID, "ctx")
		ctx, cancel := context.WithCancel(b.ctx)
		cancel()
		_, err := b.st.Publish(ctx, store.PublishRequest{AppID: app.ID, Topic: "ctx", Body: []byte(`1`)})
		require.ErrorIs(t, err, context.Canceled)

		require.Empty(t, history(t, b, app.ID, "ctx"))
		topic, err := b.st.GetTopic(b.ctx, app.ID, "ctx")
		require.NoError(t, err)
		require.Zero(t, topic.LastID)
		require.Equal(t, uint64(1), publish(t, b, app.ID, "ctx", `1`).ID)
	})

	t.Run("TenantIsolation", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		appA := createApp(t, b)
		appB := createApp(t, b)
		createTopic(t, b, appA.ID, "shared")
		topicB := createTopic(t, b, appB.ID, "shared")

		var gotA []store.Message
		for i := range 3 {
			gotA = append(gotA, publish(t, b, appA.ID, "shared", fmt.Sprintf(`"a%d"`, i)))
		}
		msgB := publish(t, b, appB.ID, "shared", `"b"`)
		require.Equal(t, uint64(1), msgB.ID)
		requireMessages(t, gotA, history(t, b, appA.ID, "shared"))
		requireMessages(t, []store.Message{msgB}, history(t, b, appB.ID, "shared"))

		require.NoError(t, b.st.DeleteTopic(b.ctx, appA.ID, "shared"))
		got, err := b.st.GetTopic(b.ctx, appB.ID, "shared")
		require.NoError(t, err)
		topicB.LastID = 1
		requireTopic(t, topicB, got)
		requireMessages(t, []store.Message{msgB}, history(t, b, appB.ID, "shared"))
		_, err = b.st.Publish(b.ctx, store.PublishRequest{AppID: appA.ID, Topic: "shared", Body: []byte(`1`)})
		requireNotFound(t, err)
	})
}

func testHistory(t *testing.T, setup setupFunc) {
	t.Helper()

	t.Run("AfterAndLimit", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		createTopic(t, b, app.ID, "h")
		createTopic(t, b, app.ID, "other")
		var all []store.Message
		for i := range 10 {
			all = append(all, publish(t, b, app.ID, "h", fmt.Sprintf(`{"i":%d}`, i)))
			publish(t, b, app.ID, "other", `{}`)
		}

		for _, tc := range []struct {
			after uint64
			limit int
			want  []store.Message
		}{
			{after: 0, limit: 100, want: all},
			{after: 0, limit: 10, want: all},
			{after: 0, limit: 3, want: all[:3]},
			{after: 3, limit: 4, want: all[3:7]},
			{after: 8, limit: 100, want: all[8:]},
			{after: 9, limit: 1, want: all[9:]},
			{after: 10, limit: 100, want: nil},
			{after: 1000, limit: 100, want: nil},
			{after: 1<<64 - 1, limit: 100, want: nil},
			{after: 0, limit: 0, want: nil},
		} {
			got, err := b.st.History(b.ctx, app.ID, "h", tc.after, tc.limit)
			require.NoError(t, err, "after %d limit %d", tc.after, tc.limit)
			requireMessages(t, tc.want, got)
		}
	})

	t.Run("PagesWalkTheWholeHistory", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		createTopic(t, b, app.ID, "h")
		var all []store.Message
		for i := range 10 {
			all = append(all, publish(t, b, app.ID, "h", fmt.Sprintf(`{"i":%d}`, i)))
		}
		// A reader pages with the last id it saw as its cursor; the page
		// after the last message is empty, not an error.
		var got []store.Message
		pages := 0
		for after := uint64(0); ; pages++ {
			page, err := b.st.History(b.ctx, app.ID, "h", after, 3)
			require.NoError(t, err)
			require.LessOrEqual(t, len(page), 3)
			if len(page) == 0 {
				break
			}
			got = append(got, page...)
			after = page[len(page)-1].ID
		}
		require.Equal(t, 4, pages)
		requireMessages(t, all, got)
	})

	t.Run("LimitZeroStillFindsTheTopic", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		createTopic(t, b, app.ID, "h")
		publish(t, b, app.ID, "h", `1`)
		for _, limit := range []int{0, -1} {
			got, err := b.st.History(b.ctx, app.ID, "h", 0, limit)
			require.NoError(t, err)
			require.Empty(t, got)
			_, err = b.st.History(b.ctx, app.ID, "missing", 0, limit)
			requireNotFound(t, err)
		}
	})

	t.Run("EmptyTopic", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		createTopic(t, b, app.ID, "quiet")
		got, err := b.st.History(b.ctx, app.ID, "quiet", 0, 10)
		require.NoError(t, err)
		require.Empty(t, got)
	})

	t.Run("UnknownTopicIsNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		_, err := b.st.History(b.ctx, app.ID, "missing", 0, 10)
		requireNotFound(t, err)
		_, err = b.st.History(b.ctx, "no-such-app", "missing", 0, 10)
		requireNotFound(t, err)
	})
}
