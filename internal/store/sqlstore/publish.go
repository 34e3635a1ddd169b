package sqlstore

import (
	"fmt"
	"slices"
	"time"

	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/groupcommit"
)

// The steps of a publish batch that are the same on both stores. A store's
// writer (its commit function for groupcommit.Queue) runs them around its
// own transaction:
//
//  1. Groups.Assign groups the batch's calls by topic.
//  2. In the transaction, the store reads each group's topic (Group.Missing,
//     TopicID, Next, Triggers, PublishedAt), fails the calls to a missing
//     topic (FailMissing), answers the calls whose idempotency
//     key a publish used within the window (Replay), and writes each other
//     call's message with Group.Take and its deliveries, one per trigger.
//  3. Committed: HandOver, then AnswerAll. Failed: FailAll.
//
// How the transaction runs is each store's own (see the package doc).

// TopicKey names a topic.
type TopicKey struct{ App, Topic string }

// Group is what one batch publishes to one topic.
type Group struct {
	Key TopicKey
	// Missing is set when the topic does not exist; the other fields are
	// then unset.
	Missing bool
	// TopicID is the topic's row id.
	TopicID int64
	// Next is the id the group's next message gets (Take).
	Next uint64
	// PublishedAt is the stamp of the group's messages. No message of a
	// topic gets an earlier stamp than the one before it, whatever the
	// clock does.
	PublishedAt time.Time
	// Triggers are the ids of the topic's enabled triggers: each message
	// of the group gets a delivery for each.
	Triggers []string
	// N is how many calls of the batch store a message in the topic, for
	// a store that takes the ids of a group at once.
	N int64
}

// NotFound is the error of a call to the group's topic when it is Missing.
func (g *Group) NotFound() error { return TopicNotFound(g.Key.Topic) }

// TopicNotFound is the error of a publish to topic, which does not exist.
func TopicNotFound(topic string) error {
	return fmt.Errorf("publish: topic %q: %w", topic, store.ErrNotFound)
}

// Take gives c the group's next id: it sets c.Msg to c's message, as it
// is stored and answered, and returns the body to store, never nil (NULL
// would break NOT NULL; the store does not judge bodies).
func (g *Group) Take(c *groupcommit.Call) []byte {
	c.Msg = store.Message{
		AppID:       c.Req.AppID,
		Topic:       c.Req.Topic,
		ID:          g.Next,
		Body:        c.Req.Body,
		PublishedAt: g.PublishedAt,
	}
	g.Next++
	if c.Req.Body == nil {
		return []byte{}
	}
	return c.Req.Body
}

// Groups is a batch's groups, reused from batch to batch so that a batch
// allocates little. It belongs to one writer goroutine.
type Groups struct {
	// List holds a group per topic of the batch; a call's Group is its
	// group's index in it.
	List  []Group
	index map[TopicKey]int
}

// Assign groups live by topic and sets each call's Group. The groups come
// in the order of their first call, or sorted by cmp when it is not nil
// (Postgres locks topics in one order, so that batches never wait for each
// other in a circle). Each group starts with only its Key set.
func (gs *Groups) Assign(live []*groupcommit.Call, cmp func(a, b TopicKey) int) {
	if gs.index == nil {
		gs.index = make(map[TopicKey]int)
	}
	clear(gs.index)
	clear(gs.List) // drop the last batch's trigger ids
	gs.List = gs.List[:0]
	for _, c := range live {
		k := TopicKey{c.Req.AppID, c.Req.Topic}
		g, ok := gs.index[k]
		if !ok {
			g = len(gs.List)
			gs.List = append(gs.List, Group{Key: k})
			gs.index[k] = g
		}
		c.Group = g
	}
	if cmp == nil {
		return
	}
	slices.SortFunc(gs.List, func(a, b Group) int { return cmp(a.Key, b.Key) })
	for i := range gs.List {
		gs.index[gs.List[i].Key] = i
	}
	for _, c := range live {
		c.Group = gs.index[TopicKey{c.Req.AppID, c.Req.Topic}]
	}
}

// FailMissing fails (Call.Fail) every call of live to a missing topic
// that has not failed yet, and with it the rest of its batch publish,
// before anything of it is written. It reports whether it failed a batch
// publish of more than one call, whose other calls may already hold ids.
// A batch publish of one call gets its *store.ItemError too, as
// store.Store.PublishBatch says.
func (gs *Groups) FailMissing(live []*groupcommit.Call) (unitFailed bool) {
	for _, c := range live {
		if g := &gs.List[c.Group]; g.Missing && c.Err == nil {
			c.Fail(g.NotFound())
			unitFailed = unitFailed || c.Batched()
		}
	}
	return unitFailed
}

// Replay answers c with the earlier publish of its idempotency key, as
// stored (topic, id, body, stamp), and returns nil: c.Replay is set, and
// nothing is written for c. When that publish went to another topic, it
// returns the store.ErrConflict that c fails with instead.
func Replay(c *groupcommit.Call, topic string, id int64, body []byte, publishedAt time.Time) error {
	if topic != c.Req.Topic {
		return KeyConflict(topic)
	}
	c.Replay = true
	c.Msg = store.Message{AppID: c.Req.AppID, Topic: topic, ID: uint64(id), Body: body, PublishedAt: publishedAt}
	return nil
}

// KeyConflict is the error of a publish whose idempotency key a publish
// to topic, another one, used within the window.
func KeyConflict(topic string) error {
	return fmt.Errorf("publish: idempotency key used for topic %q: %w", topic, store.ErrConflict)
}

// HandOver hands the messages of a committed batch over, in batch order
// (which is id order within each topic): it calls each stored message's
// CommittedFunc. A call that failed (FailMissing included), or replays an
// earlier publish, keeps its answer.
func HandOver(live []*groupcommit.Call) {
	for _, c := range live {
		if c.Err != nil || c.Replay {
			continue
		}
		if f := c.Req.CommittedFunc; f != nil {
			f(c.Msg)
		}
	}
}

// AnswerAll answers every call of live. A batch is answered only once it
// is all handed over: a subscriber woken by its first message then finds
// the others too and writes them in one go, and no woken publisher
// competes with the hand-over.
func AnswerAll(live []*groupcommit.Call) {
	for _, c := range live {
		c.Answer()
	}
}

// FailAll answers every call of live with err: the batch did not commit.
func FailAll(live []*groupcommit.Call, err error) {
	for _, c := range live {
		c.Msg, c.Err = store.Message{}, err
		c.Answer()
	}
}
