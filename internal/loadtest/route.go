package loadtest

import (
	"fmt"
	"strconv"
)

// nodeRoute says which node each subscriber connects to and which node
// each message is published through, for a run on one server (nodes 1) or
// a cluster of servers sharing one Postgres database. Nodes are numbered
// from 0.
type nodeRoute struct {
	nodes  int
	topics int
	// publishNode is the node every message is published through;
	// PublishAll spreads them, message seq s of each topic going through node
	// (s-1) % nodes, so that a subscriber can tell from the seq alone
	// whether it is on the publishing node.
	publishNode int
}

// PublishAll is the Options.PublishNode that spreads publishes over every
// node, each message through the next.
const PublishAll = -1

// publishAllName is PublishAll as --publish-node and the report spell it.
const publishAllName = "all"

// ParsePublishNode reads --publish-node: a node number below nodes, or
// "all" (PublishAll).
func ParsePublishNode(s string, nodes int) (int, error) {
	if s == publishAllName {
		return PublishAll, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n >= max(nodes, 1) {
		return 0, fmt.Errorf("--publish-node %q: want a node number from 0 to %d, or %q", s, max(nodes, 1)-1, publishAllName)
	}
	return n, nil
}

// subscriberNode is the node subscriber i connects to. Subscriber i reads
// topic i % topics, and the subscribers of each topic go round-robin over
// the nodes, so every topic has readers on every node (given enough of
// them).
func (r nodeRoute) subscriberNode(i int) int {
	return (i / r.topics) % r.nodes
}

// subscribersOn counts the subscribers, of subscribers in all, that
// connect to node: per topic index, and in total.
func (r nodeRoute) subscribersOn(node, subscribers int) (perTopic []int, total int) {
	perTopic = make([]int, r.topics)
	for i := range subscribers {
		if r.subscriberNode(i) == node {
			perTopic[i%r.topics]++
			total++
		}
	}
	return perTopic, total
}

// publisherNode is the node the message with the given seq (of any topic)
// is published through.
func (r nodeRoute) publisherNode(seq uint64) int {
	if r.publishNode >= 0 {
		return r.publishNode
	}
	return int((seq - 1) % uint64(r.nodes))
}

// crossNode reports whether subscriber i receives the message with the
// given seq from another node than the one it was published through.
func (r nodeRoute) crossNode(i int, seq uint64) bool {
	return r.subscriberNode(i) != r.publisherNode(seq)
}
