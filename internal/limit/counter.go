// Package limit holds the bounds Herald puts on what one client or one app
// may hold at once: counters of held slots (streams) and token buckets
// (publishes per second). It is pure logic, safe for concurrent use, with
// no knowledge of HTTP or of the store.
//
// # Cluster mode
//
// Every bound here lives in one process: in a cluster each node enforces
// it on its own traffic, so an app may hold up to the limit on every node.
package limit

import "sync"

// Counter counts slots held per key, each key with its own maximum given
// at acquire time. It is safe for concurrent use; the zero value is ready.
type Counter struct {
	mu   sync.Mutex
	held map[string]int // guarded by mu; keys with none held are deleted
}

// TryAcquire takes a slot of key unless max are held already. A max of 0
// or less means unlimited.
func (c *Counter) TryAcquire(key string, max int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if max > 0 && c.held[key] >= max {
		return false
	}
	if c.held == nil {
		c.held = make(map[string]int)
	}
	c.held[key]++
	return true
}

// Release gives back a slot of key taken by TryAcquire.
func (c *Counter) Release(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held[key]--; c.held[key] <= 0 {
		delete(c.held, key)
	}
}

// Held returns how many slots of key are held.
func (c *Counter) Held(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.held[key]
}
