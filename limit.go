package wssafe

import (
	"log/slog"
	"math"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// sourceMap is a map from client sources to per-source state that stays
// bounded whatever the clients do. It keeps two generations: lookups hit the
// current one, or move an entry up from the previous one; when the current
// generation is half the bound, or older than ttl, the previous one is
// dropped and the current one takes its place. So at most max entries are
// held, an entry unused for two generations is gone, and no goroutine
// sweeps. The caller holds a lock.
type sourceMap[K comparable, V any] struct {
	max       int
	ttl       time.Duration
	cur, prev map[K]V
	since     time.Time // when cur began
}

func newSourceMap[K comparable, V any](limit int, ttl time.Duration) sourceMap[K, V] {
	return sourceMap[K, V]{max: limit, ttl: ttl, cur: make(map[K]V)}
}

// get returns k's state, creating it with mk when absent.
func (m *sourceMap[K, V]) get(now time.Time, k K, mk func() V) V {
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

func (m *sourceMap[K, V]) len() int { return len(m.cur) + len(m.prev) }

// sourceLimiter is a token bucket per client source (see sourceKey), for
// the handshake rate. A nil *sourceLimiter allows everything.
type sourceLimiter struct {
	r  Rate
	mu sync.Mutex
	m  sourceMap[netip.Addr, *rate.Limiter]
}

// newSourceLimiter returns nil for a zero (disabled) rate. An entry may
// expire once its bucket would have refilled completely: forgetting it then
// changes nothing. Under a flood of new sources, entries are dropped sooner,
// which only ever makes the limit more lenient, never memory larger.
func newSourceLimiter(r Rate, maxSources int) *sourceLimiter {
	if r == (Rate{}) {
		return nil
	}
	refill := time.Duration(float64(r.Burst) / r.PerSecond * float64(time.Second))
	return &sourceLimiter{r: r, m: newSourceMap[netip.Addr, *rate.Limiter](maxSources, max(refill, time.Second))}
}

// allow takes a token from src's bucket, or says how long until one is
// available.
func (l *sourceLimiter) allow(src netip.Addr, now time.Time) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.m.get(now, src, func() *rate.Limiter {
		return rate.NewLimiter(rate.Limit(l.r.PerSecond), l.r.Burst)
	})
	if lim.AllowN(now, 1) {
		return true, 0
	}
	wait := (1 - lim.TokensAt(now)) / l.r.PerSecond
	return false, max(time.Duration(math.Ceil(wait*float64(time.Second))), time.Second)
}

func (l *sourceLimiter) len() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m.len()
}

// messageLimits are a session's message-rate limiters; nil ones are off.
// msgs and bytes are the session's own; subject is shared by every session
// of its subject and is set at admission.
type messageLimits struct {
	msgs, bytes, subject *rate.Limiter
}

func (c *config) limitsMessages() bool {
	return c.MessageRate != (Rate{}) || c.SubjectMessageRate != (Rate{}) || c.ByteRate != (Rate{})
}

func newLimiter(r Rate) *rate.Limiter {
	if r == (Rate{}) {
		return nil
	}
	return rate.NewLimiter(rate.Limit(r.PerSecond), r.Burst)
}

func (e *Endpoint) newLimits() messageLimits {
	return messageLimits{msgs: newLimiter(e.cfg.MessageRate), bytes: newLimiter(e.cfg.ByteRate)}
}

// checkLimits spends one message and n bytes from the session's budgets.
// Exceeding one ends the session with 1008 "rate limit exceeded".
func (s *Session) checkLimits(n int) error {
	now := s.ep.cfg.clock.mono() // once per message: the cheap reading, see realClock.mono
	var event string
	switch l := &s.limits; {
	case l.msgs != nil && !l.msgs.AllowN(now, 1):
		event = EventMessageRate
	case l.subject != nil && !l.subject.AllowN(now, 1):
		event = EventSubjectRate
	case l.bytes != nil && !l.bytes.AllowN(now, n):
		event = EventByteRate
	default:
		return nil
	}
	logEvent(s.ctx, s.log, slog.LevelWarn, event, "wssafe: message rate exceeded")
	return ErrRateLimited
}
