package wssafe

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"strings"
	"time"
)

// Defaults for the guard and queue settings of [Options].
const (
	DefaultSendQueueMessages   = 256
	DefaultSendQueueBytes      = 1 << 20
	DefaultSecurityLogInterval = time.Second

	// defaultMaxSources bounds the per-address state kept by the handshake
	// limiter and by the log limiter: about 100 bytes an entry.
	defaultMaxSources = 1 << 14
	// capRetryAfter is the Retry-After sent with a connection-cap refusal:
	// a slot frees when some session ends, which cannot be predicted.
	capRetryAfter = 5 * time.Second
)

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

// resolveRates applies [Rate]'s rules to every Rate field, through one
// function, and the two named switches of the limits that are on by
// default.
func (c *config) resolveRates() error {
	const offByDefault = "a zero Rate leaves the limit off"
	var err error
	if c.HandshakeRate, err = c.HandshakeRate.resolve(rateField{name: "HandshakeRate", off: offByDefault}); err != nil {
		return err
	}
	if c.MessageRate, err = c.MessageRate.resolve(rateField{name: "MessageRate", off: offByDefault}); err != nil {
		return err
	}
	if c.SubjectMessageRate, err = c.SubjectMessageRate.resolve(rateField{name: "SubjectMessageRate", off: offByDefault}); err != nil {
		return err
	}
	if c.ByteRate, err = c.ByteRate.resolve(rateField{name: "ByteRate", minBurst: c.ReadLimit, off: offByDefault}); err != nil {
		return err
	}
	switch {
	case c.InsecureNoPingLimit && c.PingRate != (Rate{}):
		return errors.New("wssafe: PingRate and InsecureNoPingLimit contradict each other: leave PingRate zero to turn the ping limit off, or unset InsecureNoPingLimit")
	case !c.InsecureNoPingLimit:
		c.PingRate, err = c.PingRate.resolve(rateField{name: "PingRate", def: Rate{PerSecond: DefaultPingRate, Burst: DefaultPingBurst},
			off: "a zero Rate means 5/s with a burst of 20; to turn the ping limit off, set InsecureNoPingLimit instead"})
		if err != nil {
			return err
		}
	}
	if c.CloseOnInvalidMessage {
		if c.InvalidMessages != (Rate{}) {
			return errors.New("wssafe: InvalidMessages and CloseOnInvalidMessage contradict each other: leave InvalidMessages zero to close at the first invalid message, or unset CloseOnInvalidMessage")
		}
		c.strictMode = true
		return nil
	}
	c.InvalidMessages, err = c.InvalidMessages.resolve(rateField{name: "InvalidMessages", def: Rate{PerSecond: 10.0 / 60, Burst: 10},
		off: "a zero Rate means 10 per minute with a burst of 10; to close at the first invalid message, set CloseOnInvalidMessage instead"})
	return err
}

// minRate is the slowest refill a Rate may have: one event a day. Below
// it a bucket, once spent, never refills within any session or within
// the life of the handshake limiter's per-address state.
const minRate = 1.0 / 86400

// A rateField is what resolve needs to know about one Rate field.
type rateField struct {
	name     string
	def      Rate   // what a zero Rate means; Rate{} is off
	minBurst int64  // the smallest usable burst beyond one (ByteRate: ReadLimit)
	off      string // what to write instead of an off switch, for errors
}

// resolve validates r under [Rate]'s rules and fills in a zero Burst: the
// rate rounded up, at least one, at least f.minBurst.
func (r Rate) resolve(f rateField) (Rate, error) {
	switch {
	case r == Rate{}:
		return f.def, nil
	case math.IsNaN(r.PerSecond) || math.IsInf(r.PerSecond, 0):
		return r, fmt.Errorf("wssafe: %s.PerSecond is %v; write a finite number of events per second, e.g. Rate{PerSecond: 10} (%s)", f.name, r.PerSecond, f.off)
	case r.PerSecond < 0:
		return r, fmt.Errorf("wssafe: %s.PerSecond must not be negative; write the events allowed per second, e.g. Rate{PerSecond: 10} (%s)", f.name, f.off)
	case r.PerSecond == 0:
		return r, fmt.Errorf("wssafe: %s.Burst is set without PerSecond, a bucket that never refills; write both, e.g. Rate{PerSecond: 1, Burst: %d} (%s)", f.name, max(r.Burst, 1), f.off)
	case r.PerSecond < minRate:
		return r, fmt.Errorf("wssafe: %s.PerSecond %g never refills in practice; write at least one a day, PerSecond: 1.0/86400 (%s)", f.name, r.PerSecond, f.off)
	case r.Burst < 0:
		return r, fmt.Errorf("wssafe: %s.Burst must not be negative; zero means PerSecond rounded up (%s)", f.name, f.off)
	case r.Burst == 0:
		r.Burst = int(min(max(math.Ceil(r.PerSecond), 1, float64(f.minBurst)), math.MaxInt32))
	case int64(r.Burst) < f.minBurst:
		return r, fmt.Errorf("wssafe: %s.Burst must be at least ReadLimit (%d), or no full-size message could pass; write Burst: %d, or leave it zero", f.name, f.minBurst, f.minBurst)
	}
	return r, nil
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

// originAllowed applies coder/websocket's origin rule before Accept, so the
// refusal can be logged and counted: no Origin header passes (not a
// browser), the request's own host passes, and otherwise the Origin host
// (or scheme://host for patterns with "://") must match a pattern.
//
// With an ambient credential it is stricter, never looser, than coder's
// rule, so Accept never refuses what it admitted: only http and https
// origins, and on a TLS endpoint an http origin only through a pattern
// that names http:// itself (see [Options.OriginPatterns]).
func (c *config) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	explicitOnly := false // an http origin on a TLS endpoint
	if c.ambientCredential(r) {
		switch strings.ToLower(u.Scheme) {
		case "https":
		case "http":
			explicitOnly = c.overTLS(r)
		default:
			return false
		}
	}
	if !explicitOnly && strings.EqualFold(r.Host, u.Host) {
		return true
	}
	for _, p := range c.OriginPatterns {
		target := u.Host
		if strings.Contains(p, "://") {
			target = u.Scheme + "://" + u.Host
		} else if explicitOnly {
			continue
		}
		if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(target)); ok {
			return true
		}
	}
	return false
}

// peerAddr returns the address of the directly connected peer (a proxy or
// the client), or an invalid Addr if RemoteAddr is malformed.
func peerAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// trustedPeer reports whether the direct peer is a configured trusted proxy,
// i.e. whether its forwarding headers may be believed.
func (c *config) trustedPeer(r *http.Request) bool {
	return c.isTrusted(peerAddr(r))
}

func (c *config) isTrusted(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
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

// clientIP returns the client's address: the peer's, unless the peer is a
// trusted proxy. Then the forwarding header is walked from the right, the
// end the proxies wrote, past every trusted hop; the first untrusted
// address is the client. Whatever a client wrote itself lies to the left of
// that and is never read. An element that is not an address ("unknown", an
// obfuscated identifier) stops the walk at the last hop that reported it.
func (c *config) clientIP(r *http.Request) netip.Addr {
	client := peerAddr(r)
	if !c.isTrusted(client) {
		return client
	}
	name := "X-Forwarded-For"
	if c.forwarded {
		name = "Forwarded"
	}
	lines := r.Header.Values(name)
	for i := len(lines) - 1; i >= 0; i-- {
		for rest := lines[i]; rest != ""; {
			var elem string
			if j := strings.LastIndexByte(rest, ','); j >= 0 {
				rest, elem = rest[:j], rest[j+1:]
			} else {
				rest, elem = "", rest
			}
			if strings.TrimSpace(elem) == "" {
				continue
			}
			a, ok := parseHop(elem, c.forwarded)
			if !ok {
				return client
			}
			client = a
			if !c.isTrusted(a) {
				return a
			}
		}
	}
	return client
}

// parseHop parses one element of X-Forwarded-For ("192.0.2.1",
// "2001:db8::1", "[2001:db8::1]:443") or of Forwarded (its for= parameter).
func parseHop(elem string, forwarded bool) (netip.Addr, bool) {
	elem = strings.TrimSpace(elem)
	if forwarded {
		var ok bool
		if elem, ok = forwardedFor(elem); !ok {
			return netip.Addr{}, false
		}
	}
	if a, err := netip.ParseAddr(elem); err == nil {
		return a.WithZone("").Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(elem); err == nil {
		return ap.Addr().WithZone("").Unmap(), true
	}
	if len(elem) > 2 && elem[0] == '[' && elem[len(elem)-1] == ']' {
		if a, err := netip.ParseAddr(elem[1 : len(elem)-1]); err == nil {
			return a.WithZone("").Unmap(), true
		}
	}
	return netip.Addr{}, false
}

// forwardedFor returns the value of the for= parameter of one Forwarded
// element (RFC 7239), without quotes.
func forwardedFor(elem string) (string, bool) {
	for pair := range strings.SplitSeq(elem, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || !strings.EqualFold(k, "for") {
			continue
		}
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		return v, true
	}
	return "", false
}

// sourceKey is the unit that per-address limits count: an IPv4 address, or
// an IPv6 address's /64, since one host (one subscriber) controls a whole
// /64 and could otherwise rotate through 2^64 addresses.
func sourceKey(a netip.Addr) netip.Addr {
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// ClientIP returns the client's address: the peer's, or the address a
// trusted proxy reported (see [Options.TrustedProxies]). It is the address
// the IP lists, caps and rate limits apply to.
func (s *Session) ClientIP() netip.Addr { return s.ip }

// ClientIP returns the client address of r as the endpoint derives it: the
// peer's, or the address a trusted proxy reported (see
// [Options.TrustedProxies] and [Options.ForwardedHeader]). It is the
// address the endpoint's IP lists, caps and rates apply to, and that
// [Session.ClientIP] returns; an application's own per-address limits
// beside the socket (a sign-in form, say) should key on it, so that both
// agree on who the client is behind a proxy. Safe for concurrent use.
func (e *Endpoint) ClientIP(r *http.Request) netip.Addr { return e.cfg.clientIP(r) }

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
)

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
func (e *Endpoint) refuseShutdown(ip netip.Addr) {
	e.record(Observation{Kind: HandshakeRefused, Reason: EventShuttingDown, ClientIP: ip})
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
// gets 429 with Retry-After. The authentication step sets s.subject and
// calls it; returning false means the answer has been written.
func (e *Endpoint) admitEarly(w http.ResponseWriter, r *http.Request, s *Session) bool {
	if err := e.admit(s); err != nil {
		e.refuse(w, r, s.ip, refuseSubject)
		return false
	}
	return true
}
