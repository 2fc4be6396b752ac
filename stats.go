package wssafe

// Stats, the counters behind it, and record, where every observation is
// counted and handed to the Observer.

import (
	"maps"
	"net/netip"
	"sync"
	"sync/atomic"
)

// Traffic counts the data messages and payload bytes a session received
// and sent (control frames not included).
type Traffic struct {
	MessagesIn  int64 `json:"messages_in"`
	BytesIn     int64 `json:"bytes_in"`
	MessagesOut int64 `json:"messages_out"`
	BytesOut    int64 `json:"bytes_out"`
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

	// Handshaking is the number of handshakes in progress: upgrade
	// requests in ServeHTTP, from its first check to its answer. A session
	// just accepted counts in Active and, until ServeHTTP returns, here.
	Handshaking int `json:"handshaking"`
	// SendDropped counts the messages queued by Send, SendPrepared or a
	// Hub broadcast that were never written: their session ended first
	// (a slow consumer's backlog, cut with it, included) or their write
	// failed. The cuts themselves are LimitHits[EventSlowConsumer].
	SendDropped uint64 `json:"send_dropped"`

	// Backplane is what Options.Backplane reports through its Node: the
	// link's state, what it sent, received, dropped and refused. Nil
	// without a Backplane.
	Backplane *BackplaneStats `json:"backplane,omitempty"`
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
		Handshaking:        int(st.handshaking.Load()),
		SendDropped:        st.sendDropped.Load(),
	}
	if e.node != nil {
		out.Backplane = e.node.stats()
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

// endpointStats holds the counters behind Stats.
type endpointStats struct {
	accepted, opened, authOK, panics atomic.Uint64
	sendDropped                      atomic.Uint64 // see Stats.SendDropped
	handshaking                      atomic.Int64  // ServeHTTP calls in progress
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
