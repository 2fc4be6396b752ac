package wssafe

// The client's address: the peer, trusted proxies, forwarding headers
// (X-Forwarded-For, Forwarded, X-Forwarded-Proto) and the note about
// untrusted ones.

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

func (c *config) resolveTrusted() error {
	c.TrustedProxies = append([]string(nil), c.TrustedProxies...)
	for _, p := range c.TrustedProxies {
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			return fmt.Errorf("wssafe: TrustedProxies: %q is not a CIDR prefix (use 10.0.0.1/32 for one address): %w", p, err)
		}
		c.trusted = append(c.trusted, pfx.Masked())
	}
	if family := trustsEveryone(c.trusted); family != "" && !c.InsecureTrustAllProxies {
		return fmt.Errorf("wssafe: TrustedProxies %q cover every %s address, so any client could choose its own address (and dodge the IP lists, caps and rates) with a forwarding header; list only your proxies' networks, or set InsecureTrustAllProxies if no peer but your own proxies can reach this listener",
			c.TrustedProxies, family)
	}
	return nil
}

// trustsEveryone returns "IPv4" or "IPv6" when the union of trusted covers
// that whole address family, else "".
func trustsEveryone(trusted []netip.Prefix) string {
	switch {
	case coversPrefix(trusted, netip.PrefixFrom(netip.IPv4Unspecified(), 0)):
		return "IPv4"
	case coversPrefix(trusted, netip.PrefixFrom(netip.IPv6Unspecified(), 0)):
		return "IPv6"
	}
	return ""
}

// coversPrefix reports whether the union of set covers all of p. It halves
// p only where some prefix of set lies strictly inside it, so the work is
// bounded by len(set) times the address length.
func coversPrefix(set []netip.Prefix, p netip.Prefix) bool {
	inside := false
	for _, q := range set {
		if q.Bits() <= p.Bits() && q.Contains(p.Addr()) {
			return true
		}
		if q.Bits() > p.Bits() && p.Contains(q.Addr()) {
			inside = true
		}
	}
	if !inside {
		return false
	}
	lo := netip.PrefixFrom(p.Addr(), p.Bits()+1)
	b := p.Addr().AsSlice()
	b[p.Bits()/8] |= 0x80 >> (p.Bits() % 8)
	a, _ := netip.AddrFromSlice(b)
	return coversPrefix(set, lo) && coversPrefix(set, netip.PrefixFrom(a, p.Bits()+1))
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

// ClientIP returns the client address of r as the endpoint derives it: the
// peer's, or the address a trusted proxy reported (see
// [Options.TrustedProxies] and [Options.ForwardedHeader]). It is the
// address the endpoint's IP lists, caps and rates apply to, and that
// [Session.ClientIP] returns; an application's own per-address limits
// beside the socket (a sign-in form, say) should key on it, so that both
// agree on who the client is behind a proxy. Safe for concurrent use.
func (e *Endpoint) ClientIP(r *http.Request) netip.Addr { return e.cfg.clientIP(r) }

// overTLS reports whether the handshake reached the endpoint over TLS:
// directly, or through a trusted proxy that says so. RequireTLS and the
// origin's scheme check (see config.originAllowed) both use it.
func (c *config) overTLS(r *http.Request) bool {
	return r.TLS != nil || (c.trustedPeer(r) && forwardedHTTPS(r))
}

// forwardedHTTPS reports whether the proxy that sent r says the client
// connected over TLS. Only the last element of each header counts: it is
// the one the nearest proxy, the trusted one, added; earlier ones came from
// further away and may be the client's own invention. Forwarded (RFC 7239)
// wins over X-Forwarded-Proto when both are present.
func forwardedHTTPS(r *http.Request) bool {
	if fwd := r.Header.Values("Forwarded"); len(fwd) > 0 {
		return secureProto(forwardedProto(lastElement(fwd)))
	}
	return secureProto(lastElement(r.Header.Values("X-Forwarded-Proto")))
}

// lastElement returns the last comma-separated element of a header's values.
func lastElement(values []string) string {
	if len(values) == 0 {
		return ""
	}
	v := values[len(values)-1]
	return strings.TrimSpace(v[strings.LastIndexByte(v, ',')+1:])
}

// forwardedProto returns the proto parameter of one Forwarded element.
func forwardedProto(elem string) string {
	for _, pair := range strings.Split(elem, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if ok && strings.EqualFold(k, "proto") {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

func secureProto(p string) bool {
	return strings.EqualFold(p, "https") || strings.EqualFold(p, "wss")
}

// untrustedForwardedInterval is the least interval between two
// untrusted_forwarded lines about one peer: a misconfigured proxy sends the
// header with every request, and the operator needs to be told, not
// flooded.
const untrustedForwardedInterval = time.Minute

// forwardingHeaders are the headers a proxy writes, in canonical form (the
// form net/http stores received headers in).
var forwardingHeaders = [...]string{"X-Forwarded-For", "Forwarded", "X-Forwarded-Proto"}

// maxForwardedValueLog bounds the bytes of the header's value in the line.
const maxForwardedValueLog = 64

// noteUntrustedForwarding logs, rate-limited, that r carries a forwarding
// header its peer is not trusted to write. Without such a header it costs
// three map lookups; the peer's address is parsed only when one is there.
func (e *Endpoint) noteUntrustedForwarding(r *http.Request, ip netip.Addr) {
	for _, name := range forwardingHeaders {
		v, ok := r.Header[name]
		if !ok {
			continue
		}
		if e.cfg.trustedPeer(r) || !e.log.Enabled(r.Context(), slog.LevelInfo) {
			return
		}
		value := ""
		if len(v) > 0 {
			value = truncate(v[0], maxForwardedValueLog)
		}
		attrs := []slog.Attr{slog.String("header", name), slog.String("value", value),
			slog.String("remote", r.RemoteAddr), slog.String("client", ip.String())}
		e.writeLimited(r.Context(), e.log, slog.LevelInfo, ip, EventUntrustedForwarded,
			max(e.logs.every(), untrustedForwardedInterval),
			"wssafe: forwarding header from a peer not in TrustedProxies ignored; list the proxy there if it is one",
			attrs)
		return
	}
}
