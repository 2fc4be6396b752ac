package wssafe

import (
	"context"
	"net/http"
	"net/netip"
	"sort"
	"sync"
	"time"
)

// FakeClock is the tests' clock: time moves only on Advance, and timers
// (every timer of an endpoint built with it: keepalive, lifetime, token
// expiry, the pong timeout, the write and idle tickers) fire when Advance
// passes their deadline. Socket deadlines stay on the real clock; the
// tickers that renew them lazily tick only when the clock is advanced.
type FakeClock struct {
	mu     sync.Mutex
	at     time.Time
	origin time.Time // nanos' zero
	timers []*fakeTimer
}

type fakeTimer struct {
	c    *FakeClock
	when time.Time
	f    func()
}

// NewFakeClock returns a clock stopped at now.
func NewFakeClock(now time.Time) *FakeClock { return &FakeClock{at: now, origin: now} }

// Now returns the clock's time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.at
}

func (c *FakeClock) now() time.Time  { return c.Now() }
func (c *FakeClock) mono() time.Time { return c.Now() }
func (c *FakeClock) nanos() int64    { return int64(c.Now().Sub(c.origin)) }

// Timers returns the number of armed timers.
func (c *FakeClock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

func (c *FakeClock) afterFunc(d time.Duration, f func()) timer {
	t := &fakeTimer{c: c, f: f}
	t.Reset(d)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	return t.remove()
}

// Reset re-arms the timer d after the clock's time, like time.Timer.Reset.
func (t *fakeTimer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	armed := t.remove()
	t.when = t.c.at.Add(d)
	t.c.timers = append(t.c.timers, t)
	return armed
}

// remove disarms t; the clock's lock is held.
func (t *fakeTimer) remove() bool {
	for i, x := range t.c.timers {
		if x == t {
			t.c.timers = append(t.c.timers[:i], t.c.timers[i+1:]...)
			return true
		}
	}
	return false
}

// Advance moves the clock forward by d and fires the timers now due, in
// deadline order, each on its own goroutine like time.AfterFunc.
func (c *FakeClock) Advance(d time.Duration) {
	for _, t := range c.due(d) {
		go t.f()
	}
}

// AdvanceSync is Advance with the due timers run one after the other on
// the caller's goroutine; it returns how many ran. For timers whose
// callbacks do not block, so that a test can go on once they have run.
func (c *FakeClock) AdvanceSync(d time.Duration) int {
	due := c.due(d)
	for _, t := range due {
		t.f()
	}
	return len(due)
}

// due moves the clock forward by d and disarms and returns the timers due,
// in deadline order.
func (c *FakeClock) due(d time.Duration) []*fakeTimer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at = c.at.Add(d)
	var due, rest []*fakeTimer
	for _, t := range c.timers {
		if t.when.After(c.at) {
			rest = append(rest, t)
		} else {
			due = append(due, t)
		}
	}
	c.timers = rest
	sort.SliceStable(due, func(i, j int) bool { return due[i].when.Before(due[j].when) })
	return due
}

// Hooks are the test doubles an endpoint can be built with (see
// NewWithHooks); the zero Hooks are New's.
type Hooks struct {
	// Clock, if set, is the endpoint's clock: token validation and expiry,
	// every limiter, timer and ticker, the durations logged and observed.
	Clock *FakeClock
	// MaxSources, if set, lowers the bound on per-address limiter state
	// (the handshake limiter and the log limiter).
	MaxSources int
	// CoderWrites, if set, has coder/websocket's Conn.Write write data
	// frames, as New does for a coder version the tests do not cover.
	// Unset, wssafe writes them (see wire.go) whatever the version: test
	// binaries carry no dependency versions for New to check.
	CoderWrites bool
}

func (k Hooks) hooks() hooks {
	h := hooks{maxSources: k.MaxSources, writes: writesDirect}
	if k.CoderWrites {
		h.writes = writesCoder
	}
	if k.Clock != nil {
		h.clock = k.Clock
	}
	return h
}

// NewWithHooks is New with the test doubles k.
func NewWithHooks(h Handler, o *Options, k Hooks) (*Endpoint, error) {
	return newEndpoint(h, o, k.hooks())
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
	c, err := o.resolve(hooks{})
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

// HandshakeSources is the number of addresses the handshake limiter tracks.
func HandshakeSources(e *Endpoint) int { return e.handshakes.len() }

// LogSources is the number of (address, event) pairs the log limiter tracks.
func LogSources(e *Endpoint) int { return e.logs.len() }

// RecordAuth reports an authentication outcome as the auth step will.
func RecordAuth(e *Endpoint, s *Session, ip netip.Addr, reason string) { e.recordAuth(s, ip, reason) }

// ClientIP resolves o and returns the client address it derives from r.
func ClientIP(o *Options, r *http.Request) (netip.Addr, error) {
	c, err := o.resolve(hooks{})
	if err != nil {
		return netip.Addr{}, err
	}
	return c.clientIP(r), nil
}

// DirectWrites reports whether e's data frames are written by wssafe.
func DirectWrites(e *Endpoint) bool { return e.cfg.direct }

// CoderTested are the coder/websocket versions the direct write path is
// enabled for.
func CoderTested() []string { return coderTested }

// Deflations is the number of messages wssafe has compressed so far, in
// every endpoint of the test binary.
func Deflations() uint64 { return deflations.Load() }

// CompressorIdle is how long a session with context takeover keeps its
// compressor without compressing a message.
const CompressorIdle = compressorIdle

// HoldsCompressor reports whether s keeps a compressor of its own (context
// takeover). It waits for a write in progress to finish.
func HoldsCompressor(s *Session) bool {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.zctx != nil
}

// CompressorLookDuringWrite runs the release timer's look at s's
// compressor while a write holds s's write lock, after a whole interval
// without a compressed message. It returns once the look has: it must not
// wait for the lock.
func CompressorLookDuringWrite(s *Session) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.zhot = false
	s.idleCompressor()
}

// EndDuringCompressedWrite ends s while a compressed write of p holds its
// write lock: the end's attempt to give the compressor back finds the
// lock taken, and the write that holds it must give it back instead.
func EndDuringCompressedWrite(s *Session, p []byte) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.cancel(ErrShutdown)
	s.dropDeflater()
	s.writeDeflated(context.Background(), MessageText, p)
}
