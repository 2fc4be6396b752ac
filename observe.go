package wssafe

// Observation and its kinds, what Options.Observer is told.

import (
	"context"
	"net/http"
	"net/netip"
	"time"
)

// An ObservationKind says what an [Observation] reports.
type ObservationKind uint8

// The kinds of [Observation]. Each handshake is reported once: as
// accepted, as refused, or, when its token is refused before Accept, as
// AuthFailed (Panicked for a panic in Authorize) without a Session, which
// Stats counts in Refused too; each accepted session is reported closed exactly once; a
// session is reported opened once it is admitted (its subject, if any,
// verified), which is right after it is accepted when the endpoint does not
// authenticate. A session refused at admission after Accept (its
// first-message subject over MaxConnsPerSubject, or the cluster
// unavailable) is reported accepted, then refused with its Session, then
// closed.
const (
	HandshakeAccepted ObservationKind = iota + 1 // Session set; Duration: the handshake's
	HandshakeRefused                             // Reason: EventIPDenied, EventOriginRefused, EventTLSRequired, EventAtCapacity ...; Duration: the handshake's
	AuthSucceeded                                // Session set
	AuthFailed                                   // Reason: why (expired, signature, forbidden ...); Session nil when refused before Accept
	SessionOpened                                // Session set
	SessionClosed                                // Code, Duration (the session's lifetime), Traffic
	MessageHandled                               // Duration: time spent in the handler chain; Size: the payload's bytes; only with an Observer
	LimitHit                                     // Reason: EventMessageRate, EventSlowConsumer, EventPingFlood ...
	ValidationFailed                             // Reason: EventInvalidUTF8, EventUnsupportedType, EventInvalidMessage, EventInvalidCompressed
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
	// Duration is a session's lifetime (SessionClosed), a message's
	// handling time (MessageHandled), or a handshake's: the time since
	// ServeHTTP began, on the endpoint's clock, for a handshake's outcome
	// (HandshakeAccepted, HandshakeRefused, and AuthFailed or Panicked
	// without a Session). A HandshakeRefused with a Session (refused at
	// admission, after its HandshakeAccepted) counts from the same start.
	Duration time.Duration
	// Size is the payload's length in bytes (MessageHandled).
	Size int
	// Traffic is what a session exchanged (SessionClosed).
	Traffic Traffic
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
		EventPongFlood, EventInflationRatio:
		o.Kind = LimitHit
	case EventInvalidUTF8, EventUnsupportedType, EventInvalidMessage, EventInvalidCompressed:
		o.Kind = ValidationFailed
	case EventPanic:
		o.Kind = Panicked
	default:
		return o
	}
	o.Reason = event
	return o
}

// Observers returns an Observer that calls each non-nil f in turn, in
// order, with every Observation; nil when none is. Metrics adapters are
// combined with the application's own Observer this way, never in its
// place:
//
//	opts.Observer = wssafe.Observers(metrics.Observe, myObserver)
//
// The Observers run on the goroutine that reports the event (the
// session's, or ServeHTTP's), so each must be quick and safe for
// concurrent use.
func Observers(fs ...func(Observation)) func(Observation) {
	var list []func(Observation)
	for _, f := range fs {
		if f != nil {
			list = append(list, f)
		}
	}
	switch len(list) {
	case 0:
		return nil
	case 1:
		return list[0]
	}
	return func(o Observation) {
		for _, f := range list {
			f(o)
		}
	}
}

// handshakeStartKey is the request context's key of the time ServeHTTP
// began, set only when the endpoint has an Observer (see sinceHandshake).
type handshakeStartKey struct{}

// withHandshakeStart returns r with its handshake's start, t, in its
// context; the session's context, derived from it, carries t too.
func withHandshakeStart(r *http.Request, t time.Time) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), handshakeStartKey{}, t))
}

// sinceHandshake returns the time since the handshake of ctx (a request's
// or a session's context) began, or zero without an Observer, which is the
// only reader of Observation.Duration.
func (e *Endpoint) sinceHandshake(ctx context.Context) time.Duration {
	if e.cfg.Observer == nil {
		return 0
	}
	if t, ok := ctx.Value(handshakeStartKey{}).(time.Time); ok {
		return e.cfg.clock.mono().Sub(t)
	}
	return 0
}
