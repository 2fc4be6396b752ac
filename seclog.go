package wssafe

// The security log limiter: per source and event, per event, and overall.

import (
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wssafe/wssafe/internal/sourcemap"
	"golang.org/x/time/rate"
)

// logLimiter rate-limits the lines of security events (see securityEvent),
// whatever their level, in three ways:
//
//   - per client source and event: at most one line per SecurityLogInterval,
//     the next one carrying, as "suppressed", how many were dropped in
//     between;
//   - per event: at most maxEventLogRate lines per second, all sources
//     together, so that a flood of one event from many addresses takes a
//     bounded share of the log;
//   - globally: at most maxLogRate lines per second, all events together,
//     except that an event with no line in the past second always gets
//     its next one, so that a flood of some events never hides the first
//     line of another. The total is thus bounded by maxLogRate plus one
//     line a second per distinct event (a fixed set of names).
//
// A line dropped by any of the three counts as suppressed for its source
// and event. A nil *logLimiter allows every line.
type logLimiter struct {
	interval time.Duration
	now      func() time.Time
	global   *rate.Limiter

	mu         sync.Mutex
	m          sourcemap.Map[logKey, *logState]
	events     map[string]*eventBudget
	suppressed atomic.Uint64
}

type logKey struct {
	src   netip.Addr
	event string
}

type logState struct {
	next       time.Time // no line before then
	suppressed int
}

// eventBudget is one event's share of the log, all sources together.
type eventBudget struct {
	lim  *rate.Limiter
	last time.Time // when the event last had a line
}

const (
	// maxLogRate bounds the rate-limited lines of one endpoint, all
	// sources and events together (burst as much).
	maxLogRate = 100
	// maxEventLogRate bounds the lines of one event, all sources together
	// (burst as much).
	maxEventLogRate = 10
	// maxLogEvents bounds the event names with a budget of their own;
	// names beyond it (there are far fewer) share one.
	maxLogEvents = 256
)

func newLogLimiter(c *config) *logLimiter {
	if c.SecurityLogInterval < 0 {
		return nil
	}
	return &logLimiter{
		interval: c.SecurityLogInterval,
		now:      c.clock.now,
		global:   rate.NewLimiter(maxLogRate, maxLogRate),
		// Kept as long as the longest interval a line may use: a state
		// forgotten earlier would let its next line through early.
		m:      sourcemap.New[logKey, *logState](c.maxSources, max(c.SecurityLogInterval, untrustedForwardedInterval)),
		events: make(map[string]*eventBudget),
	}
}

// every returns the interval between two lines of one source and event,
// SecurityLogInterval; zero for a nil limiter.
func (l *logLimiter) every() time.Duration {
	if l == nil {
		return 0
	}
	return l.interval
}

// allow reports whether a line for event from ip may be written now, and
// returns attrs with the count of lines suppressed since the last one.
func (l *logLimiter) allow(ip netip.Addr, event string, attrs []slog.Attr) ([]slog.Attr, bool) {
	return l.allowEvery(ip, event, l.every(), attrs)
}

// allowEvery is allow with every, rather than SecurityLogInterval, between
// two lines of the event from one source.
func (l *logLimiter) allowEvery(ip netip.Addr, event string, every time.Duration, attrs []slog.Attr) ([]slog.Attr, bool) {
	if l == nil {
		return attrs, true
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.m.Get(now, logKey{sourceKey(ip), event}, func() *logState { return &logState{} })
	if now.Before(st.next) || !l.budget(now, event) {
		st.suppressed++
		l.suppressed.Add(1)
		return attrs, false
	}
	st.next = now.Add(every)
	if st.suppressed > 0 {
		attrs = append(attrs, slog.Int("suppressed", st.suppressed))
		st.suppressed = 0
	}
	return attrs, true
}

// budget takes one line from event's budget and from the global one; the
// caller holds l.mu.
func (l *logLimiter) budget(now time.Time, event string) bool {
	b := l.events[event]
	if b == nil {
		if len(l.events) >= maxLogEvents {
			event = ""
		}
		if b = l.events[event]; b == nil {
			b = &eventBudget{lim: rate.NewLimiter(maxEventLogRate, maxEventLogRate)}
			l.events[event] = b
		}
	}
	if b.lim.TokensAt(now) < 1 {
		return false
	}
	fresh := b.last.IsZero() || now.Sub(b.last) >= time.Second
	if !l.global.AllowN(now, 1) && !fresh {
		return false
	}
	b.lim.AllowN(now, 1)
	b.last = now
	return true
}

func (l *logLimiter) suppressedTotal() uint64 {
	if l == nil {
		return 0
	}
	return l.suppressed.Load()
}

func (l *logLimiter) len() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m.Len()
}
