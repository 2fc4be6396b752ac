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

// An ObservationKind says what an [Observation] reports.
type ObservationKind uint8

// The kinds of [Observation]. Each handshake is reported once: as
// accepted, as refused, or, when its token is refused before Accept, as
// AuthFailed (Panicked for a panic in Authorize) without a Session, which
// Stats counts in Refused too; each accepted session is reported closed exactly once; a
// session is reported opened once it is admitted (its subject, if any,
// verified), which is right after it is accepted when the endpoint does not
// authenticate.
const (
	HandshakeAccepted ObservationKind = iota + 1 // Session set
	HandshakeRefused                             // Reason: EventIPDenied, EventOriginRefused, EventTLSRequired, EventAtCapacity ...
	AuthSucceeded                                // Session set
	AuthFailed                                   // Reason: why (expired, signature, forbidden ...); Session nil when refused before Accept
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

// An Observation is one event at an Endpoint, as [Options.Observer] is
// told it. Fields that do not apply to its Kind are zero.
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
	Refused            map[string]uint64     `json:"refused"`  // handshakes refused, by event (ip_denied, tls_required ...; a token refused at the handshake: auth_failed or auth_forbidden, besides AuthFailed by reason; a panic in Authorize: panic)
	Closed             map[StatusCode]uint64 `json:"closed"`   // sessions ended, by close code
	AuthSucceeded      uint64                `json:"auth_succeeded"`
	AuthFailed         map[string]uint64     `json:"auth_failed"`         // by reason (expired, signature, missing ...), at the handshake or later
	LimitHits          map[string]uint64     `json:"limit_hits"`          // by reason
	ValidationFailures map[string]uint64     `json:"validation_failures"` // by reason
	Panics             uint64                `json:"panics"`
	Traffic            Traffic               `json:"traffic"`         // all sessions, ended and live
	LogsSuppressed     uint64                `json:"logs_suppressed"` // security log lines dropped by the log rate limit (see Options.SecurityLogInterval)
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
		obs(o)
	}
}

// eventObservation is the Observation of a session's security event,
// logged under the event name: a LimitHit, a ValidationFailed or a
// Panicked with the event as Reason, or Kind zero for an event that is
// counted otherwise (a timeout or a protocol error, by the session's
// close code). logEvent hands it to securityEvent for every Warn and
// Error line of a session, before the log level and the log limiter have
// their say, so every such event is observed exactly once per occurrence.
func (s *Session) eventObservation(event string) Observation {
	o := Observation{Session: s, ClientIP: s.ip}
	switch event {
	case EventMessageTooBig, EventMessageTimeout, EventPingFlood,
		EventMessageRate, EventSubjectRate, EventByteRate, EventSlowConsumer,
		EventPongFlood:
		o.Kind = LimitHit
	case EventInvalidUTF8, EventUnsupportedType, EventInvalidMessage:
		o.Kind = ValidationFailed
	case EventPanic:
		o.Kind = Panicked
	default:
		return o
	}
	o.Reason = event
	return o
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
	m          sourceMap[logKey, *logState]
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
		m:      newSourceMap[logKey, *logState](c.maxSources, max(c.SecurityLogInterval, untrustedForwardedInterval)),
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
	st := l.m.get(now, logKey{sourceKey(ip), event}, func() *logState { return &logState{} })
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
	return l.m.len()
}
