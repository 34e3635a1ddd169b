package sqlite

import (
	"strings"

	"github.com/heraldhq/herald/internal/store/sqlstore"
)

// maxHeads bounds the writer's head cache. Past it the cache starts over:
// a writer that publishes to more topics than this reads some heads again,
// as it did before there was a cache.
const maxHeads = 4096

// head is what a publish batch needs of a topic (headQuery): its row id,
// the id its next message gets and its enabled triggers.
type head struct {
	topicID int64
	next    uint64
	// triggers is shared with the groups of the batches that use it, which
	// only read it.
	triggers []string
}

// heads caches the heads of the topics the writer published to, so that a
// batch reads only those it has not seen: reading them was a statement per
// topic per batch, as much as a message's insert.
//
// A head stays right for as long as nothing but the writer changes the
// database: another write on the write connection (a topic deleted and
// created again, a trigger created, disabled or deleted, Prune, a Claim)
// or a write from another connection or process. SQLite counts every such
// change in the write connection's data version (SQLITE_FCNTL_DATA_VERSION,
// which moves with every commit, its own connection's included), so the
// writer records the version its own commit left and, inside the next
// batch's transaction, drops the cache if the version has moved on since.
// Nothing needs to remember to tell the writer about a change.
//
// A heads belongs to the writer goroutine.
type heads struct {
	m map[sqlstore.TopicKey]head
	// version is the data version the writer's last commit left, which the
	// cache is right for; meaningless while m is empty.
	version uint32
}

// begin starts a batch whose transaction sees data version v: it drops
// the cache unless v is still the version the cache is right for.
func (h *heads) begin(v uint32) {
	if v != h.version {
		h.drop()
	}
}

// get returns the cached head of topic k.
func (h *heads) get(k sqlstore.TopicKey) (head, bool) {
	hd, ok := h.m[k]
	return hd, ok
}

// keep caches the heads of a committed batch's groups, with the ids they
// stopped at, as right for data version v (the one the commit left).
func (h *heads) keep(groups []sqlstore.Group, v uint32) {
	if h.m == nil {
		h.m = make(map[sqlstore.TopicKey]head)
	}
	for i := range groups {
		g := &groups[i]
		if g.Missing {
			continue
		}
		k := g.Key
		if _, ok := h.m[k]; !ok {
			if len(h.m) >= maxHeads {
				clear(h.m)
			}
			// The key's strings may point into a request's memory: a
			// copy of their own keeps it from staying alive.
			k = sqlstore.TopicKey{App: strings.Clone(k.App), Topic: strings.Clone(k.Topic)}
		}
		h.m[k] = head{topicID: g.TopicID, next: g.Next, triggers: g.Triggers}
	}
	h.version = v
}

// drop empties the cache: the next batch reads every head it needs.
func (h *heads) drop() { clear(h.m) }
