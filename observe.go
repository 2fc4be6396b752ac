package wssafe

import (
	"log/slog"
	"maps"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// An Observer is told about everything that happens at an Endpoint, to feed
// metrics, traces or audit logs (see [Options.Observer]).
//
// Observe is called synchronously on the goroutine where the event happens:
// a handshake, a session's read loop, a broadcast. It is called from many
// goroutines at once and must return quickly without blocking: count, or
// hand off to a buffered channel, never do I/O. The Observation's Session
// may be kept; the Observation itself is a value.
type Observer interface {
	Observe(Observation)
}

// ObserverFunc adapts a function to an [Observer].
type ObserverFunc func(Observation)

// Observe calls f(o).
func (f ObserverFunc) Observe(o Observation) { f(o) }

// An ObservationKind says what an [Observation] reports.
type ObservationKind uint8

// The kinds of [Observation]. Each handshake is reported once, as accepted
// or refused; each accepted session is reported closed exactly once; a
// session is reported opened once it is admitted (its subject, if any,
// verified), which is right after it is accepted when the endpoint does not
// authenticate.
const (
	HandshakeAccepted ObservationKind = iota + 1 // Session set
	HandshakeRefused                             // Reason: EventIPDenied, EventOriginRefused, EventAtCapacity ...
	AuthSucceeded                                // Session set
	AuthFailed                                   // Reason: the auth event; Session nil when refused before Accept
	SessionOpened                                // Session set
	SessionClosed                                // Code, Duration (the session's lifetime), Traffic
	MessageHandled                               // Duration: time spent in the handler chain; only with an Observer
	LimitHit                                     // Reason: EventMessageRate, EventSlowConsumer, EventPingFlood ...
	ValidationFailed                             // Reason: EventInvalidUTF8, EventUnsupportedType, EventInvalidMessage
	Panicked                                     // the callback panicked; the session closes 1011
)

var kindNames = [...]string{"", "handshake_accepted", "handshake_refused", "auth_succeeded", "auth_failed",
	"session_opened", "session_closed", "message_handled", "limit_hit", "validation_failed", "panicked"}

// String returns the kind's stable snake_case name.
func (k ObservationKind) String() string {
	if int(k) < len(kindNames) && k != 0 {
		return kindNames[k]
	}
	return "unknown"
}

// An Observation is one event at an Endpoint. Fields that do not apply to
// its Kind are zero.
type Observation struct {
	Kind ObservationKind
	// Reason is the stable event name (one of the Event constants, the
	// same value as the "event" attribute of the matching log line) for
	// refusals, auth failures, limits and validation failures.
	Reason string
	// Session is the session concerned, nil before the upgrade.
	Session *Session
	// ClientIP is the client's address (see [Session.ClientIP]).
	ClientIP netip.Addr
	// Code is the close code a session ended with (SessionClosed).
	Code StatusCode
	// Duration is a session's lifetime (SessionClosed) or a message's
	// handling time (MessageHandled).
	Duration time.Duration
	// Traffic is what a session exchanged (SessionClosed).
	Traffic Traffic
}

// Traffic counts the data messages and payload bytes a session received
// and sent (control frames not included).
type Traffic struct {
	MessagesIn  int64 `json:"messages_in"`
	BytesIn     int64 `json:"bytes_in"`
	MessagesOut int64 `json:"messages_out"`
	BytesOut    int64 `json:"bytes_out"`
}

// trafficCounters are a session's Traffic, written by its own goroutines
// and read by Stats.
type trafficCounters struct {
	msgsIn, bytesIn, msgsOut, bytesOut atomic.Int64
}

func (t *trafficCounters) received(n int) {
	t.msgsIn.Add(1)
	t.bytesIn.Add(int64(n))
}

func (t *trafficCounters) sent(n int) {
	t.msgsOut.Add(1)
	t.bytesOut.Add(int64(n))
}

func (t *trafficCounters) snapshot() Traffic {
	return Traffic{t.msgsIn.Load(), t.bytesIn.Load(), t.msgsOut.Load(), t.bytesOut.Load()}
}

func (t *trafficCounters) add(d Traffic) {
	t.msgsIn.Add(d.MessagesIn)
	t.bytesIn.Add(d.BytesIn)
	t.msgsOut.Add(d.MessagesOut)
	t.bytesOut.Add(d.BytesOut)
}

// Stats is a snapshot of an Endpoint's counters since New. It needs no
// metrics library; its JSON form is stable (field tags below).
type Stats struct {
	Active             int                   `json:"active"`   // live sessions, including those not yet authenticated
	Accepted           uint64                `json:"accepted"` // handshakes accepted
	Opened             uint64                `json:"opened"`   // sessions opened (admitted)
	Refused            map[string]uint64     `json:"refused"`  // handshakes refused, by reason
	Closed             map[StatusCode]uint64 `json:"closed"`   // sessions ended, by close code
	AuthSucceeded      uint64                `json:"auth_succeeded"`
	AuthFailed         map[string]uint64     `json:"auth_failed"`         // by reason
	LimitHits          map[string]uint64     `json:"limit_hits"`          // by reason
	ValidationFailures map[string]uint64     `json:"validation_failures"` // by reason
	Panics             uint64                `json:"panics"`
	Traffic            Traffic               `json:"traffic"`         // all sessions, ended and live
	LogsSuppressed     uint64                `json:"logs_suppressed"` // Warn lines dropped by the log rate limit
}

// endpointStats holds the counters behind Stats.
type endpointStats struct {
	accepted, opened, authOK, panics atomic.Uint64
	refused, authFailed              counters[string]
	limits, validation               counters[string]
	closed                           counters[StatusCode]
	traffic                          trafficCounters // of ended sessions; live ones are summed by Stats
}

// counters is a set of named counters. Its keys come from a small fixed
// set (event names, close codes), so it stays small.
type counters[K comparable] struct {
	mu sync.Mutex
	m  map[K]uint64
}

func (c *counters[K]) inc(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[K]uint64)
	}
	c.m[k]++
}

func (c *counters[K]) snapshot() map[K]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := maps.Clone(c.m)
	if out == nil {
		out = make(map[K]uint64)
	}
	return out
}

// Stats returns a snapshot of the endpoint's counters. It is safe for
// concurrent use and cheap enough to serve on every scrape.
func (e *Endpoint) Stats() Stats {
	st := &e.stats
	out := Stats{
		Accepted:           st.accepted.Load(),
		Opened:             st.opened.Load(),
		Refused:            st.refused.snapshot(),
		Closed:             st.closed.snapshot(),
		AuthSucceeded:      st.authOK.Load(),
		AuthFailed:         st.authFailed.snapshot(),
		LimitHits:          st.limits.snapshot(),
		ValidationFailures: st.validation.snapshot(),
		Panics:             st.panics.Load(),
		LogsSuppressed:     e.logs.suppressedTotal(),
	}
	h := e.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	out.Active = len(h.live)
	var sum trafficCounters
	sum.add(st.traffic.snapshot())
	for s := range h.live {
		sum.add(s.traffic.snapshot())
	}
	out.Traffic = sum.snapshot()
	return out
}

// record counts o and passes it to the Observer.
func (e *Endpoint) record(o Observation) {
	st := &e.stats
	switch o.Kind {
	case HandshakeAccepted:
		st.accepted.Add(1)
	case HandshakeRefused:
		st.refused.inc(o.Reason)
	case AuthSucceeded:
		st.authOK.Add(1)
	case AuthFailed:
		st.authFailed.inc(o.Reason)
	case SessionOpened:
		st.opened.Add(1)
	case SessionClosed:
		st.closed.inc(o.Code)
	case LimitHit:
		st.limits.inc(o.Reason)
	case ValidationFailed:
		st.validation.inc(o.Reason)
	case Panicked:
		st.panics.Add(1)
	}
	if obs := e.cfg.Observer; obs != nil {
		obs.Observe(o)
	}
}

// recordEvent records a session's security event, logged under the event
// name, as the matching Observation. logEvent calls it, so every such event
// is observed exactly as often as it is logged, log level and log rate
// limit notwithstanding.
func (e *Endpoint) recordEvent(s *Session, event string) {
	var kind ObservationKind
	switch event {
	case EventMessageTooBig, EventMessageTimeout, EventPingFlood,
		EventMessageRate, EventSubjectRate, EventByteRate, EventSlowConsumer,
		EventPongFlood:
		kind = LimitHit
	case EventInvalidUTF8, EventUnsupportedType, EventInvalidMessage:
		kind = ValidationFailed
	case EventPanic:
		kind = Panicked
	default:
		return
	}
	e.record(Observation{Kind: kind, Reason: event, Session: s, ClientIP: s.ip})
}

// recordAuth reports an authentication outcome: reason "" is a success.
// The authentication step calls it once per attempt; s is nil for a
// handshake refused before Accept.
func (e *Endpoint) recordAuth(s *Session, ip netip.Addr, reason string) {
	if reason == "" {
		e.record(Observation{Kind: AuthSucceeded, Session: s, ClientIP: ip})
		return
	}
	e.record(Observation{Kind: AuthFailed, Reason: reason, Session: s, ClientIP: ip})
}

// observeMessage times one message for the Observer; dispatch calls it only
// when there is an Observer, so that a nil Observer costs nothing per
// message.
func (s *Session) observeMessage(m Message) error {
	now := s.ep.cfg.now
	start := now()
	err := s.ep.handler.ServeMessage(s.ctx, s, m)
	s.ep.cfg.Observer.Observe(Observation{Kind: MessageHandled, Session: s, ClientIP: s.ip, Duration: now().Sub(start)})
	return err
}

// logLimiter rate-limits Warn lines per client source and event: at most
// one line per interval, the next one carrying how many were suppressed in
// between; and at most maxLogRate lines per second overall, so that many
// sources together cannot flood the log either. A nil *logLimiter allows
// every line.
type logLimiter struct {
	every  time.Duration
	now    func() time.Time
	global *rate.Limiter

	mu         sync.Mutex
	m          sourceMap[logKey, *logState]
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

// maxLogRate bounds the rate-limited Warn lines of one endpoint, all
// sources together.
const maxLogRate = 100

func newLogLimiter(c *config) *logLimiter {
	if c.SecurityLogInterval < 0 {
		return nil
	}
	return &logLimiter{
		every:  c.SecurityLogInterval,
		now:    c.now,
		global: rate.NewLimiter(maxLogRate, maxLogRate),
		m:      newSourceMap[logKey, *logState](c.maxSources, c.SecurityLogInterval),
	}
}

// allow reports whether a line for event from ip may be written now, and
// returns attrs with the count of lines suppressed since the last one.
func (l *logLimiter) allow(ip netip.Addr, event string, attrs []slog.Attr) ([]slog.Attr, bool) {
	if l == nil {
		return attrs, true
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.m.get(now, logKey{sourceKey(ip), event}, func() *logState { return &logState{} })
	if now.Before(st.next) || !l.global.AllowN(now, 1) {
		st.suppressed++
		l.suppressed.Add(1)
		return attrs, false
	}
	st.next = now.Add(l.every)
	if st.suppressed > 0 {
		attrs = append(attrs, slog.Int("suppressed", st.suppressed))
		st.suppressed = 0
	}
	return attrs, true
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
	return l.m.len()
}
