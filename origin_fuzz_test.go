package wssafe

import (
	"crypto/rand"
	"crypto/tls"
	"net/http"
	"strings"
	"testing"
)

// FuzzOriginGuard checks, for any Origin and Host, that the strict rule
// for an ambient credential only ever narrows coder/websocket's rule (so
// Accept never refuses what the guard admitted), that an http:// Origin
// opens a TLS endpoint only through an explicit http:// pattern, and that
// an admitted Host is one AllowedHosts lists.
func FuzzOriginGuard(f *testing.F) {
	for _, s := range [][2]string{
		{"https://app.example.com", "example.com"}, {"http://example.com", "example.com"},
		{"http://x.app.example.com:8080", "[::1]:8080"}, {"null", "localhost"}, {"ftp://example.com", "EXAMPLE.COM."},
	} {
		f.Add(s[0], s[1], true)
	}
	patterns := []string{"*.app.example.com", "https://secure.example.com", "http://legacy.example.com", "example.com:*"}
	secret := make([]byte, 32)
	rand.Read(secret)
	cookie := &Options{OriginPatterns: patterns, InsecureAllowHTTPOrigins: true, AllowedHosts: []string{"example.com", "[::1]:8080"},
		Auth: &AuthOptions{HMACSecret: secret, Sources: FromCookie, CookieName: "s"}}
	strict, err := cookie.resolve(hooks{})
	if err != nil {
		f.Fatal(err)
	}
	plain, err := (&Options{OriginPatterns: patterns}).resolve(hooks{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, origin, host string, overTLS bool) {
		r := &http.Request{Host: host, Header: http.Header{"Origin": {origin}}, RemoteAddr: "192.0.2.1:1"}
		if overTLS {
			r.TLS = &tls.ConnectionState{}
		}
		if strict.originAllowed(r) && !plain.originAllowed(r) {
			t.Fatalf("the strict rule admitted %q for Host %q, coder's refuses it", origin, host)
		}
		if overTLS && strings.HasPrefix(strings.ToLower(origin), "http:") && strict.originAllowed(r) &&
			!strings.HasPrefix(strings.ToLower(origin), "http://legacy.example.com") {
			t.Fatalf("http Origin %q opened a TLS endpoint (Host %q)", origin, host)
		}
		if strict.hostAllowed(host) {
			e, ok := splitHost(host)
			if !ok || (e.host != "example.com" && (e.host != "::1" || e.port != "8080")) {
				t.Fatalf("Host %q admitted", host)
			}
		}
	})
}
