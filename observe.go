package wssafe

// Observation and its kinds, what Options.Observer is told.

import (
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
