package wssafe

// OriginPatterns: their resolution, the cookie-authentication rules, and the
// run-time origin check.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"strconv"
	"strings"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

// resolveOrigins copies and checks OriginPatterns and parses AllowedHosts.
// The patterns' cookie-authentication rules are checked with the other
// cookie settings, in resolveSources.
func (c *config) resolveOrigins() error {
	c.OriginPatterns = append([]string(nil), c.OriginPatterns...)
	for _, p := range c.OriginPatterns {
		if err := checkOriginPattern(p); err != nil {
			return err
		}
	}
	return c.resolveHosts()
}

// checkOriginPattern refuses a pattern that can never match an Origin.
// coder/websocket matches a pattern with path.Match against the Origin's
// host[:port], or its scheme://host[:port] when the pattern contains
// "://"; a browser serializes an Origin without a path, in ASCII, an IPv6
// address in brackets.
func checkOriginPattern(p string) error {
	if p == "" {
		return errors.New(`wssafe: OriginPatterns: an empty pattern never matches; remove it, or write a host ("app.example.com")`)
	}
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf(`wssafe: origin pattern %q: %w (patterns use path.Match syntax; write a literal "[" as "\\[")`, p, err)
	}
	scheme, host, hasScheme := strings.Cut(p, "://")
	prefix := ""
	if !hasScheme {
		host = p
	} else if scheme == "" {
		return fmt.Errorf(`wssafe: origin pattern %q has no scheme before "://" and never matches; write "https://%s", or %q for any scheme`, p, host, host)
	} else {
		prefix = scheme + "://"
	}
	if i := strings.IndexByte(host, '/'); i > 0 {
		return fmt.Errorf("wssafe: origin pattern %q never matches: an Origin is scheme://host[:port], without a path or a trailing slash; write %q", p, prefix+host[:i])
	} else if i == 0 || host == "" {
		return fmt.Errorf("wssafe: origin pattern %q has no host and never matches; write a host, e.g. %q", p, prefix+"app.example.com")
	}
	if err := checkPatternChars(p, prefix, host); err != nil {
		return err
	}
	if host[0] == ':' {
		return fmt.Errorf("wssafe: origin pattern %q is a port without a host and never matches; write the host too, e.g. %q (or %q for every host on that port)", p, prefix+"app.example.com"+host, prefix+"*"+host)
	}
	return checkPatternPort(p, host)
}

// checkPatternChars refuses characters no serialized Origin host contains,
// and an IPv6 address written as a browser sends it, whose brackets
// path.Match reads as a character class.
func checkPatternChars(p, prefix, host string) error {
	for _, r := range host {
		switch {
		case r > 0x7e:
			if ascii, err := idna.Punycode.ToASCII(host); err == nil {
				return fmt.Errorf("wssafe: origin pattern %q never matches: browsers send a non-ASCII host in its ASCII (punycode) form; write %q", p, prefix+ascii)
			}
			return fmt.Errorf("wssafe: origin pattern %q never matches: browsers send hosts in ASCII (punycode)", p)
		case r <= ' ', r == '@', r == '#', r == '%':
			return fmt.Errorf("wssafe: origin pattern %q never matches: %q is not part of an Origin's host", p, r)
		}
	}
	addr := host
	if i := strings.LastIndex(host, "]:"); strings.HasPrefix(host, "[") && i > 0 {
		addr = host[:i+1]
	}
	if a, err := netip.ParseAddr(strings.Trim(addr, "[]")); err == nil && a.Is6() {
		fix := prefix + `\[` + a.String() + `\]` + strings.TrimPrefix(host, addr)
		return fmt.Errorf("wssafe: origin pattern %q never matches: in path.Match \"[...]\" is a character class, and an Origin's IPv6 address is in brackets; escape them: %q (a raw string: `%s`)",
			p, fix, fix)
	}
	return nil
}

// checkPatternPort refuses a literal port that is not a number. A port with
// metacharacters, or a host with a character class, is left to path.Match.
func checkPatternPort(p, host string) error {
	if strings.Contains(strings.ReplaceAll(host, `\[`, ""), "[") {
		return nil
	}
	i := strings.LastIndexByte(host, ':')
	if i < 0 {
		return nil
	}
	port := host[i+1:]
	if strings.ContainsAny(port, `*?\`) || validPort(port) {
		return nil
	}
	return fmt.Errorf("wssafe: origin pattern %q never matches: the port %q is not a number; write %q for any port", p, port, host[:i]+":*")
}

// validPort reports whether s is a decimal port, 1 to 65535.
func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n > 0 && n <= 65535 && s[0] != '+' && s[0] != '-'
}

// checkCookieOrigins refuses, under cookie authentication, every pattern
// that lets an arbitrary site in: the structural rule described at
// [Options.OriginPatterns]. The patterns have passed checkOriginPattern.
func (c *config) checkCookieOrigins() error {
	for _, p := range c.OriginPatterns {
		if err := checkCookieOrigin(p, c.InsecureAllowHTTPOrigins); err != nil {
			return fmt.Errorf("wssafe: origin pattern %q refused with cookie authentication, since every site it admits can open sockets as the user (cross-site WebSocket hijacking): %w", p, err)
		}
		if len(p) > 7 && strings.EqualFold(p[:7], "http://") {
			logEvent(context.Background(), c.Logger, slog.LevelWarn, EventInsecureConfig,
				"wssafe: an http:// origin may open sockets with the user's cookie; anyone on its network path can rewrite that page",
				slog.String("pattern", p))
		}
	}
	return nil
}

func checkCookieOrigin(p string, allowHTTP bool) error {
	scheme, host, hasScheme := strings.Cut(p, "://")
	if !hasScheme {
		host = p
	}
	switch s := strings.ToLower(scheme); {
	case !hasScheme, s == "https":
	case s == "http":
		if !allowHTTP {
			return fmt.Errorf("it admits plain-http pages, which anyone on their network path can rewrite; write %q, or set InsecureAllowHTTPOrigins", "https://"+host)
		}
	default:
		return fmt.Errorf("the scheme must be https (or http with InsecureAllowHTTPOrigins), or none; write %q", "https://"+host)
	}
	// Origins match without case (see originAllowed), and the public
	// suffix list is lower case: "*.CO.UK" is "*.co.uk".
	host = strings.ToLower(host)
	if strings.ContainsAny(host, `?[]\`) {
		return errors.New(`?, [...] and \ match hosts nobody meant to list; the only wildcard is * as a whole label ("*.example.com") or the whole port ("example.com:*"); list each host`)
	}
	name, port, hasPort := strings.Cut(host, ":")
	if hasPort && port != "*" && !validPort(port) {
		return fmt.Errorf(`the port must be a number or "*"; write %q`, name+":*")
	}
	if !strings.Contains(name, "*") && (name == "localhost" || isIPv4(name)) {
		return nil // one machine, named in full
	}
	return checkCookieHost(name)
}

// checkCookieHost requires name to end in a literal registrable domain, with
// * only as whole labels left of it.
func checkCookieHost(name string) error {
	labels := strings.Split(name, ".")
	last := -1 // the last wildcard label
	for i, l := range labels {
		switch {
		case l == "":
			return fmt.Errorf("%q has an empty label (a leading, trailing or doubled dot); write %q", name, strings.Trim(name, "."))
		case l == "*":
			last = i
		case strings.Contains(l, "*"):
			fix := `("*.example.com")`
			if i == 0 && strings.Count(l, "*") == 1 && l[0] == '*' {
				fix = fmt.Sprintf("%q", "*."+name[1:])
			}
			return fmt.Errorf("a wildcard inside a label also matches %q; make it a whole label %s",
				strings.Replace(name, "*", "evil", 1), fix)
		}
	}
	domain := strings.Join(labels[last+1:], ".")
	if domain == "" {
		return errors.New(`it admits every site; end it in a registrable domain you own ("*.example.com", "app.example.com")`)
	}
	if _, err := strconv.Atoi(labels[len(labels)-1]); err == nil && last >= 0 {
		return errors.New("a wildcard over a numeric address admits hosts nobody meant to list; list each address")
	}
	if _, err := publicsuffix.EffectiveTLDPlusOne(domain); err != nil {
		return fmt.Errorf(`%q is not a registrable domain but a public suffix (such as "com", "co.uk" or "github.io") or a single label, under which anyone can have a site; name a domain you own ("*.example.com", "app.example.com")`, domain)
	}
	// A wildcard rule of the list ("*.kawasaki.jp", "*.compute.amazonaws.com")
	// makes every name directly under a registrable-looking domain a public
	// suffix, so a * over them admits sites anyone can register.
	if probe := "x." + domain; last >= 0 {
		if ps, _ := publicsuffix.PublicSuffix(probe); ps == probe {
			return fmt.Errorf(`every name directly under %q (such as %q) is a public suffix, under which anyone can have a site; name a domain you own below it, without a wildcard over the suffix`, domain, probe)
		}
	}
	return nil
}

func isIPv4(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is4()
}

// ambientCredential reports whether the browser may be authenticating the
// socket by itself, with no action of the page's script: a cookie when
// cookie authentication is on, or a TLS client certificate.
func (c *config) ambientCredential(r *http.Request) bool {
	return (c.auth != nil && c.auth.cookie != "") || (r.TLS != nil && len(r.TLS.PeerCertificates) > 0)
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
