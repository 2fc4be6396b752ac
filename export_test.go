package wssafe

import (
	"context"
	"net/http"
	"net/netip"
	"sort"
	"sync"
	"time"
)

// FakeClock is a manual clock for tests: time moves only on Advance, and
// timers fire (each on its own goroutine, like time.AfterFunc) when
// Advance passes their deadline.
type FakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c    *FakeClock
	when time.Time
	f    func()
}

// NewFakeClock returns a clock stopped at now.
func NewFakeClock(now time.Time) *FakeClock { return &FakeClock{now: now} }

// Now returns the clock's time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Timers returns the number of armed timers.
func (c *FakeClock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

func (c *FakeClock) afterFunc(d time.Duration, f func()) timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, when: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	for i, x := range t.c.timers {
		if x == t {
			t.c.timers = append(t.c.timers[:i], t.c.timers[i+1:]...)
			return true
		}
	}
	return false
}

// Advance moves the clock forward by d and fires the timers now due, in
// deadline order.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due, rest []*fakeTimer
	for _, t := range c.timers {
		if t.when.After(c.now) {
			rest = append(rest, t)
		} else {
			due = append(due, t)
		}
	}
	c.timers = rest
	c.mu.Unlock()
	sort.Slice(due, func(i, j int) bool { return due[i].when.Before(due[j].when) })
	for _, t := range due {
		go t.f()
	}
}

// SetClock makes the endpoint built from o use c for token validation,
// expiry timers and JWK Set refresh limits.
func SetClock(o *Options, c *FakeClock) {
	o.now = c.Now
	o.afterFunc = c.afterFunc
}

// Fuzzing hooks for the token extraction and parsing code.
var (
	BearerToken       = bearerToken
	SubprotocolsToken = subprotocolsToken
	FirstMessageToken = firstMessageToken
	SplitToken        = splitToken
	DecodeObject      = decodeObject
	SubjectOf         = subjectOf
)

// Verifier resolves o (which must configure Auth) and returns its token
// verifier, for fuzzing verification without a network round trip.
func Verifier(o *Options) (func(raw []byte) (subject string, err error), error) {
	c, err := o.resolve()
	if err != nil {
		return nil, err
	}
	return func(raw []byte) (string, error) {
		id, err := c.auth.verify(context.Background(), raw)
		if err != nil {
			return "", err
		}
		return id.subject, nil
	}, nil
}

// SetDedupClock injects a clock into o, for tests of the replay window.
func SetDedupClock(o *DedupOptions, now func() time.Time) { o.now = now }

// SetNow injects only the endpoint's time source (no timers), for the
// limiters' token buckets.
func SetNow(o *Options, now func() time.Time) { o.now = now }

// SetMaxSources lowers the bound on per-address limiter state.
func SetMaxSources(o *Options, n int) { o.maxSources = n }

// SetTestSubject makes the endpoint take each session's subject from f, as
// handshake-time authentication (afterAccept false) or first-message
// authentication (afterAccept true) will.
func SetTestSubject(o *Options, f func(r *http.Request) (subject string, afterAccept bool)) {
	o.testSubject = f
}

// HandshakeSources is the number of addresses the handshake limiter tracks.
func HandshakeSources(e *Endpoint) int { return e.handshakes.len() }

// LogSources is the number of (address, event) pairs the log limiter tracks.
func LogSources(e *Endpoint) int { return e.logs.len() }

// RecordAuth reports an authentication outcome as the auth step will.
func RecordAuth(e *Endpoint, s *Session, ip netip.Addr, reason string) { e.recordAuth(s, ip, reason) }

// ClientIP resolves o and returns the client address it derives from r.
func ClientIP(o *Options, r *http.Request) (netip.Addr, error) {
	c, err := o.resolve()
	if err != nil {
		return netip.Addr{}, err
	}
	return c.clientIP(r), nil
}
