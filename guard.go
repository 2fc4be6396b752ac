package wssafe

// The handshake guards and their HTTP refusals: body, IP lists, Host,
// handshake rate, origin, TLS, connection caps.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// capRetryAfter is the Retry-After sent with a connection-cap refusal: a
// slot frees when some session ends, which cannot be predicted.
const capRetryAfter = 5 * time.Second

// guardConfig is the resolved form of the guard, limit and queue options.
type guardConfig struct {
	allow, deny []netip.Prefix
	forwarded   bool // read RFC 7239 Forwarded rather than X-Forwarded-For

	// hosts is AllowedHosts, parsed; nil accepts every Host.
	hosts []hostEntry
}

func (c *config) resolveGuards() error {
	var err error
	if c.allow, err = parsePrefixes("AllowIPs", c.AllowIPs); err != nil {
		return err
	}
	if c.deny, err = parsePrefixes("DenyIPs", c.DenyIPs); err != nil {
		return err
	}
	switch http.CanonicalHeaderKey(c.ForwardedHeader) {
	case "", "X-Forwarded-For":
	case "Forwarded":
		c.forwarded = true
	default:
		return fmt.Errorf("wssafe: ForwardedHeader %q: use \"X-Forwarded-For\" or \"Forwarded\"", c.ForwardedHeader)
	}
	if c.MaxConns < 0 || c.MaxConnsPerIP < 0 || c.MaxConnsPerSubject < 0 {
		return errors.New("wssafe: connection caps must not be negative (zero means no cap)")
	}
	if err := c.resolveRates(); err != nil {
		return err
	}
	if c.SendQueueMessages < 0 || c.SendQueueBytes < 0 {
		return errors.New("wssafe: the send queue cannot be unbounded (zero means 256 messages and 1 MiB)")
	}
	setDefault(&c.SendQueueMessages, DefaultSendQueueMessages)
	setDefault(&c.SendQueueBytes, DefaultSendQueueBytes)
	setDefault(&c.SecurityLogInterval, DefaultSecurityLogInterval)
	setDefault(&c.maxSources, defaultMaxSources)
	return nil
}

// parsePrefixes parses CIDR prefixes or single addresses.
func parsePrefixes(field string, list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range list {
		if a, err := netip.ParseAddr(v); err == nil {
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return nil, fmt.Errorf("wssafe: %s: %q is neither an address nor a CIDR prefix", field, v)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// A refusal is a handshake answered with an HTTP error before Accept.
type refusal struct {
	status int
	retry  time.Duration // sent as Retry-After when positive
	event  string
	msg    string
}

var (
	refuseIP        = refusal{http.StatusForbidden, 0, EventIPDenied, "wssafe: client address refused"}
	refuseOrigin    = refusal{http.StatusForbidden, 0, EventOriginRefused, "wssafe: cross-origin handshake refused"}
	refuseCapacity  = refusal{http.StatusServiceUnavailable, capRetryAfter, EventAtCapacity, "wssafe: at capacity; handshake refused"}
	refusePerIP     = refusal{http.StatusTooManyRequests, capRetryAfter, EventIPConnLimit, "wssafe: too many connections from one address"}
	refuseSubject   = refusal{http.StatusTooManyRequests, capRetryAfter, EventSubjectConnLimit, "wssafe: too many connections for one subject"}
	refuseHandshake = refusal{http.StatusTooManyRequests, 0, EventHandshakeRate, "wssafe: handshake rate exceeded"}
	// The cluster could not count the subject under MaxConnsPerSubject: the cap fails closed.
	refuseUnavailable = refusal{http.StatusServiceUnavailable, unavailableRetry, EventClusterUnavailable, "wssafe: cluster unavailable; handshake refused"}
)

// refuseBody answers an upgrade request that carries a body. A WebSocket
// opening handshake is a GET without one (RFC 6455 section 4.1), and a body
// that trickles in would hold the socket for as long as its sender likes
// while no guard has looked at the request yet.
var refuseBody = refusal{http.StatusBadRequest, 0, EventRequestBody, "wssafe: upgrade request with a body refused"}

// hasBody reports whether r announces a body: a Content-Length other than
// zero (-1 is unknown) or any Transfer-Encoding, which net/http moves out
// of r.Header into r.TransferEncoding. It reads nothing.
func hasBody(r *http.Request) bool {
	return r.ContentLength != 0 || len(r.TransferEncoding) > 0
}

// guard notes a forwarding header from an untrusted peer (a diagnostic),
// then runs the checks that need no shared state first (IP lists, the
// Host), then the handshake rate, then the origin. It answers a refused
// handshake and returns false.
func (e *Endpoint) guard(w http.ResponseWriter, r *http.Request, ip netip.Addr) bool {
	e.noteUntrustedForwarding(r, ip)
	if !e.cfg.ipAllowed(ip) {
		e.refuse(w, r, ip, refuseIP)
		return false
	}
	if !e.cfg.hostAllowed(r.Host) {
		e.refuse(w, r, ip, refuseHost, slog.String("host", truncate(r.Host, 256)))
		return false
	}
	if ok, retry := e.handshakes.allow(sourceKey(ip), e.cfg.clock.now()); !ok {
		rf := refuseHandshake
		rf.retry = retry
		e.refuse(w, r, ip, rf)
		return false
	}
	if !e.cfg.InsecureSkipOriginCheck && !e.cfg.originAllowed(r) {
		e.refuse(w, r, ip, refuseOrigin, slog.String("origin", truncate(r.Header.Get("Origin"), 256)))
		return false
	}
	return true
}

// ipAllowed applies DenyIPs, then AllowIPs. An address that cannot be
// determined passes only when there is no allow list.
func (c *config) ipAllowed(a netip.Addr) bool {
	if containsAddr(c.deny, a) {
		return false
	}
	return len(c.allow) == 0 || containsAddr(c.allow, a)
}

func containsAddr(list []netip.Prefix, a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range list {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// requireTLS refuses, with 403, a handshake that did not come over TLS when
// RequireTLS is set, and reports whether the handshake may go on.
//
// 403 rather than 426 Upgrade Required: a 426 must name, in an Upgrade
// header, a protocol the client can switch to on this connection, and
// wss:// is not that; it is a new connection to another scheme.
func (e *Endpoint) requireTLS(w http.ResponseWriter, r *http.Request, ip netip.Addr) bool {
	if !e.cfg.RequireTLS || e.cfg.overTLS(r) {
		return true
	}
	// Counted in Stats.Refused and rate-limited like every refusal.
	e.handshakeEvent(r, slog.LevelWarn, Observation{Kind: HandshakeRefused, Reason: EventTLSRequired, ClientIP: ip},
		EventTLSRequired, "wssafe: handshake without TLS refused")
	closeAfterReply(w)
	http.Error(w, "TLS required: connect with wss://", http.StatusForbidden)
	return false
}

// reserve takes a connection slot for a handshake that passed the guards,
// under the total and per-address caps; the slot is the session's until
// untrack. It answers a refused handshake and returns false.
func (e *Endpoint) reserve(w http.ResponseWriter, r *http.Request, s *Session, ip netip.Addr) bool {
	s.ip = ip
	if peer := peerAddr(r); ip != peer {
		s.log = s.log.With(slog.String("client", ip.String()))
	}
	if rf, ok := e.hub.reserve(s); !ok {
		e.refuse(w, r, ip, rf)
		return false
	}
	s.limits = e.newLimits()
	return true
}

// admitEarly admits a session whose subject is known before Accept
// (handshake-time authentication): over the per-subject cap the handshake
// gets 429 with Retry-After, and 503 with Retry-After when the cluster
// could not be asked. The authentication step sets s.subject and calls
// it; returning false means the answer has been written.
func (e *Endpoint) admitEarly(w http.ResponseWriter, r *http.Request, s *Session) bool {
	if err := e.admit(s); err != nil {
		rf := refuseSubject
		if errors.Is(err, ErrUnavailable) {
			rf = refuseUnavailable
		}
		e.refuse(w, r, s.ip, rf)
		return false
	}
	return true
}

// refuse answers a handshake with rf's status, and reports it through
// handshakeEvent: counted, told to the Observer and logged at Warn,
// rate-limited per client address.
func (e *Endpoint) refuse(w http.ResponseWriter, r *http.Request, ip netip.Addr, rf refusal, attrs ...slog.Attr) {
	e.handshakeEvent(r, slog.LevelWarn, Observation{Kind: HandshakeRefused, Reason: rf.event, ClientIP: ip},
		rf.event, rf.msg, attrs...)
	refuse(w, rf.status, rf.retry)
}

// refuseShutdown counts a handshake refused because shutdown has begun; it
// is not a security event and is not logged.
func (e *Endpoint) refuseShutdown(ctx context.Context, ip netip.Addr) {
	e.record(Observation{Kind: HandshakeRefused, Reason: EventShuttingDown, ClientIP: ip, Duration: e.sinceHandshake(ctx)})
}

// refuse answers a handshake with status and, when retry is positive, a
// Retry-After header, and closes the connection after it (see
// closeAfterReply).
func refuse(w http.ResponseWriter, status int, retry time.Duration) {
	closeAfterReply(w)
	if retry > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(int((retry+time.Second-1)/time.Second)))
	}
	http.Error(w, http.StatusText(status), status)
}

// closeAfterReply makes net/http close the connection as soon as the
// refusal about to be written to w has been sent, instead of reading what
// is left of the request body. Every HTTP error wssafe writes goes through
// it, before the status is written.
//
// Connection: close alone is not enough: after a handler returns, net/http
// still reads up to 256 KiB of an unread body (to keep the connection in
// sync), for as long as the client takes to trickle it, holding the socket
// and its descriptor. A read deadline of now makes that read fail at once,
// and net/http then closes the connection. Unread body bytes make the
// kernel answer the close with a reset, which is the sender's problem.
//
// Any Connection tokens already set (coder/websocket's "Upgrade" on a 426)
// are kept after "close", on a second field line, because net/http only
// honours a first value of exactly "close". On HTTP/2, net/http turns
// Connection: close into a graceful GOAWAY; WebSocket handshakes are
// HTTP/1.1, since coder/websocket does not implement RFC 8441. A
// ResponseWriter that cannot set deadlines (a wrapper without Unwrap)
// leaves the drain to http.Server.ReadTimeout.
func closeAfterReply(w http.ResponseWriter) {
	h := w.Header()
	others := h.Values("Connection")
	h.Set("Connection", "close")
	for _, v := range others {
		if !strings.EqualFold(strings.TrimSpace(v), "close") {
			h.Add("Connection", v)
		}
	}
	http.NewResponseController(w).SetReadDeadline(time.Now()) // a socket deadline: the real clock
}
