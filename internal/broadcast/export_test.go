package broadcast

// TopicCount returns how many (app, topic) rings m holds: one per topic with
// at least one live subscriber.
func TopicCount(m *Memory) int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.topics)
}
