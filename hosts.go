package wssafe

// AllowedHosts: its resolution and the Host check against DNS rebinding.

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/net/idna"
)

// refuseHost answers a Host not in AllowedHosts: 421 Misdirected Request
// rather than 403, since the request names a host this endpoint does not
// serve (RFC 9110, section 15.5.20), which an operator can then tell apart
// from an origin or address refusal in an access log.
var refuseHost = refusal{http.StatusMisdirectedRequest, 0, EventHostRefused, "wssafe: handshake for a host not in AllowedHosts refused"}

// A hostEntry is one parsed AllowedHosts entry: a lower-case name without a
// trailing dot, or an address in netip's canonical form, and a port ("" for
// any port).
type hostEntry struct {
	host, port string
}

// resolveHosts parses AllowedHosts. An empty list accepts every Host.
func (c *config) resolveHosts() error {
	for _, v := range c.AllowedHosts {
		e, err := parseHostEntry(v)
		if err != nil {
			return err
		}
		c.hosts = append(c.hosts, e)
	}
	return nil
}

func parseHostEntry(v string) (hostEntry, error) {
	const examples = `"example.com", "example.com:8443", "127.0.0.1" or "[::1]:8080"`
	switch {
	case v == "":
		return hostEntry{}, errors.New("wssafe: AllowedHosts: an empty entry matches no Host; remove it")
	case strings.Contains(v, "/"):
		_, hp, ok := strings.Cut(v, "://")
		if !ok {
			hp = v
		}
		hp, _, _ = strings.Cut(hp, "/")
		return hostEntry{}, fmt.Errorf("wssafe: AllowedHosts: %q is a URL or a path; list the host (and port) only: %q", v, hp)
	case strings.ContainsAny(v, "*?"):
		return hostEntry{}, fmt.Errorf("wssafe: AllowedHosts: %q: wildcards are not supported; list each host name", v)
	}
	for _, r := range v {
		if r > 0x7e {
			if ascii, err := idna.Lookup.ToASCII(v); err == nil {
				return hostEntry{}, fmt.Errorf("wssafe: AllowedHosts: %q: a Host header is ASCII; write the punycode form %q", v, ascii)
			}
			break
		}
	}
	e, ok := splitHost(v)
	if !ok {
		return hostEntry{}, fmt.Errorf("wssafe: AllowedHosts: %q is not a host or host:port; write %s", v, examples)
	}
	return e, nil
}

// splitHost parses a Host header value, or an AllowedHosts entry:
// name[:port], IPv4[:port], [IPv6][:port], or a bare IPv6 address.
func splitHost(s string) (hostEntry, bool) {
	var e hostEntry
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return e, false
		}
		a, err := netip.ParseAddr(s[1:end])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return e, false
		}
		e.host = a.Unmap().String()
		rest := s[end+1:]
		if rest == "" {
			return e, true
		}
		if rest[0] != ':' {
			return e, false
		}
		e.port = rest[1:]
	case strings.Count(s, ":") > 1:
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return e, false
		}
		e.host = a.Unmap().String()
		return e, true
	default:
		var hasPort bool
		e.host, e.port, hasPort = strings.Cut(s, ":")
		if hasPort && e.port == "" {
			return e, false
		}
		e.host = strings.ToLower(strings.TrimSuffix(e.host, "."))
		if a, err := netip.ParseAddr(e.host); err == nil {
			e.host = a.String()
		} else if !validHostName(e.host) {
			return e, false
		}
	}
	if e.port != "" {
		if !validPort(e.port) {
			return e, false
		}
		n, _ := strconv.Atoi(e.port)
		e.port = strconv.Itoa(n) // "08080" is port 8080
	}
	return e, true
}

// validHostName reports whether s is made of the characters of a DNS name
// (underscores included, as some internal names have them).
func validHostName(s string) bool {
	if s == "" || s[0] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// hostAllowed reports whether a handshake's Host is in AllowedHosts (always,
// when the list is empty). A Host without a port is what a browser sends
// for ports 80 and 443, so it matches entries with either.
func (c *config) hostAllowed(host string) bool {
	if len(c.hosts) == 0 {
		return true
	}
	h, ok := splitHost(host)
	if !ok {
		return false
	}
	for _, e := range c.hosts {
		if e.host != h.host {
			continue
		}
		if e.port == "" || e.port == h.port || (h.port == "" && (e.port == "80" || e.port == "443")) {
			return true
		}
	}
	return false
}
