// Package sourcemap holds per-client-source state within a fixed bound,
// for the handshake limiter and the security log limiter of package wssafe.
package sourcemap

import "time"

// A Map is a map from client sources to per-source state that stays
// bounded whatever the clients do. It keeps two generations: lookups hit the
// current one, or move an entry up from the previous one; when the current
// generation is half the bound, or older than ttl, the previous one is
// dropped and the current one takes its place. So at most max entries are
// held, an entry unused for two generations is gone, and no goroutine
// sweeps. The caller holds a lock.
type Map[K comparable, V any] struct {
	max       int
	ttl       time.Duration
	cur, prev map[K]V
	since     time.Time // when cur began
}

// New returns a Map of at most limit entries, whose generations last at
// most ttl.
func New[K comparable, V any](limit int, ttl time.Duration) Map[K, V] {
	return Map[K, V]{max: limit, ttl: ttl, cur: make(map[K]V)}
}

// Get returns k's state, creating it with mk when absent.
func (m *Map[K, V]) Get(now time.Time, k K, mk func() V) V {
	if v, ok := m.cur[k]; ok {
		return v
	}
	if len(m.cur) >= max(m.max/2, 1) || now.Sub(m.since) >= m.ttl {
		m.prev, m.cur, m.since = m.cur, make(map[K]V, len(m.cur)), now
	}
	v, ok := m.prev[k]
	if ok {
		delete(m.prev, k)
	} else {
		v = mk()
	}
	m.cur[k] = v
	return v
}

// Len returns the number of entries held.
func (m *Map[K, V]) Len() int { return len(m.cur) + len(m.prev) }
