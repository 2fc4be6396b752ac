package wssafe

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"strings"
)

// originAllowed applies coder/websocket's origin rule before Accept, so the
// refusal can be logged and counted: no Origin header passes (not a
// browser), the request's own host passes, and otherwise the Origin host
// (or scheme://host for patterns with "://") must match a pattern.
func originAllowed(r *http.Request, patterns []string) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(r.Host, u.Host) {
		return true
	}
	for _, p := range patterns {
		target := u.Host
		if strings.Contains(p, "://") {
			target = u.Scheme + "://" + u.Host
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
