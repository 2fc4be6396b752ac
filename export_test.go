package wssafe

import (
	"net/http"
	"net/netip"
	"time"
)

// SetClock injects the clock of the endpoint New builds from o.
func SetClock(o *Options, now func() time.Time) { o.now = now }

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
