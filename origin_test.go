package wssafe_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wssafe/wssafe"
)

// New refuses patterns that can never match an Origin, with or without
// cookie authentication, and says what to write instead.
func TestOriginPatternsThatNeverMatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ pattern, want string }{
		{"", "empty pattern"},
		{"example.com/app", `write "example.com"`},
		{"example.com/", `write "example.com"`},
		{"https://example.com/", `write "https://example.com"`},
		{"https://example.com/ws", `write "https://example.com"`},
		{":8080", `"app.example.com:8080"`},
		{"https://:8080", `"https://app.example.com:8080"`},
		{"https://", "has no host"},
		{"https:///ws", "has no host"},
		{"/ws", "has no host"},
		{"://example.com", `no scheme before "://"`},
		{"[::1]:8080", `"\\[::1\\]:8080"`},
		{"[::1]", `"\\[::1\\]"`},
		{"::1", `"\\[::1\\]"`},
		{"https://[0:0::1]:8080", `"https://\\[::1\\]:8080"`},
		{"example.com:http", `the port "http" is not a number; write "example.com:*"`},
		{"example.com:", "is not a number"},
		{"bücher.example", `"xn--bcher-kva.example"`},
		{"exa mple.com", "not part of an Origin's host"},
		{"user@example.com", "not part of an Origin's host"},
		{"[a-", "syntax error in pattern"},
	} {
		t.Run(tc.pattern, func(t *testing.T) {
			t.Parallel()
			_, err := wssafe.New(echo, &wssafe.Options{OriginPatterns: []string{"ok.example.com", tc.pattern}})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.True(t, strings.HasPrefix(err.Error(), "wssafe: "), err.Error())
		})
	}
}

// Without cookie authentication, every pattern that can match is accepted,
// wildcards included: the origin check then guards no ambient credential.
func TestOriginPatternsAcceptedWithoutCookies(t *testing.T) {
	t.Parallel()
	for _, p := range []string{
		"*", "*.com", "*example.com", "example.*", "https://*", "ex?mple.com", "[a-z]*.example.com",
		"*.example.com", "example.com:*", "*:8080", "https://app.example.com", "http://app.example.com",
		`\[::1\]:8080`, "chrome-extension://abcdefghijklmnop", "example.com.",
	} {
		_, err := wssafe.New(echo, &wssafe.Options{OriginPatterns: []string{p}, Logger: slog.New(slog.DiscardHandler)})
		assert.NoError(t, err, p)
	}
}

// The fix New suggests for an IPv6 origin works in a real handshake.
func TestOriginPatternEscapedIPv6(t *testing.T) {
	t.Parallel()
	_, url := server(t, echo, &wssafe.Options{OriginPatterns: []string{`\[::1\]:*`}})
	echoOnce(t, dialWith(t, url, hdr("Origin", "http://[::1]:5173")), "hi")
	assert.Equal(t, http.StatusForbidden, dialRefused(t, url, hdr("Origin", "http://[::2]:5173")).StatusCode)
	assert.Equal(t, http.StatusForbidden, dialRefused(t, url, hdr("Origin", "http://1:5173")).StatusCode)
}

// cookieOptions is cookie authentication with patterns and an opt-in.
func cookieOptions(f *authFixture, patterns []string, allowHTTP bool) *wssafe.Options {
	o := f.options(func(a *wssafe.AuthOptions) {
		a.Sources = wssafe.FromCookie
		a.CookieName = "session"
	})
	o.OriginPatterns = patterns
	o.InsecureAllowHTTPOrigins = allowHTTP
	return o
}

// Under cookie authentication New refuses every pattern that lets a site
// the deployer does not own open sockets as the user.
func TestCookieAuthRefusesOpenOriginPatterns(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ pattern, want string }{
		{"*", "admits every site"},
		{"https://*", "admits every site"},
		{"example.*", "admits every site"},
		{"*.*", "admits every site"},
		{"*.com", `"com" is not a registrable domain`},
		{"*.co.uk", `"co.uk" is not a registrable domain`},
		{"https://*.github.io", `"github.io" is not a registrable domain`},
		{"github.io", `"github.io" is not a registrable domain`},
		// Origins match without case, so must the public suffix list.
		{"*.CO.UK", `"co.uk" is not a registrable domain`},
		{"https://*.GitHub.IO", `"github.io" is not a registrable domain`},
		{"*.COM", `"com" is not a registrable domain`},
		{"*.localhost", `"localhost" is not a registrable domain`},
		{"*.kawasaki.jp", `every name directly under "kawasaki.jp" (such as "x.kawasaki.jp") is a public suffix`},
		{"*.compute.amazonaws.com", `every name directly under "compute.amazonaws.com"`},
		{"a.*.kawasaki.jp", `every name directly under "kawasaki.jp"`},
		{"myhost:8080", `"myhost" is not a registrable domain`},
		{"*example.com", `also matches "evilexample.com"; make it a whole label "*.example.com"`},
		{"a*.example.com", `also matches "aevil.example.com"`},
		{"app.ex*ple.com", `also matches "app.exevilple.com"`},
		{"ex?mple.com", "?, [...] and \\ match hosts nobody meant to list"},
		{"[a-z]*.example.com", "?, [...] and \\ match hosts"},
		{`\*.example.com`, "?, [...] and \\ match hosts"},
		{`\[::1\]:8080`, "?, [...] and \\ match hosts"},
		{"*.168.1.1", "numeric address"},
		{"example.com.", `empty label (a leading, trailing or doubled dot); write "example.com"`},
		{"example..com", "empty label"},
		{"example.com:8*", `the port must be a number or "*"`},
		{"http://app.example.com", `write "https://app.example.com", or set InsecureAllowHTTPOrigins`},
		{"HTTP://app.example.com", "InsecureAllowHTTPOrigins"},
		{"*://app.example.com", "the scheme must be https"},
		{"chrome-extension://abcdefghijklmnop", "the scheme must be https"},
	} {
		t.Run(tc.pattern, func(t *testing.T) {
			t.Parallel()
			f := newAuthFixture(t)
			_, err := wssafe.New(echo, cookieOptions(f, []string{"app.example.com", tc.pattern}, false))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), "refused with cookie authentication")
			assert.Contains(t, err.Error(), "cross-site WebSocket hijacking")
		})
	}
}

func TestCookieAuthAcceptsOwnOriginPatterns(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pattern   string
		allowHTTP bool
	}{
		{"example.com", false},
		{"*.app.example.com", false},
		{"*.example.co.uk", false},
		{"https://app.example.com", false},
		{"HTTPS://*.example.com", false},
		{"a.*.example.com", false},
		{"app.example.com:8443", false},
		{"example.com:*", false},
		{"*.alice.github.io", false},
		{"*.city.kawasaki.jp", false},
		{"*.app.x.kawasaki.jp", false},
		{"localhost:3000", false},
		{"127.0.0.1:8080", false},
		{"http://app.example.com", true},
		{"http://localhost:5173", true},
	} {
		f := newAuthFixture(t)
		_, err := wssafe.New(echo, cookieOptions(f, []string{tc.pattern}, tc.allowHTTP))
		assert.NoError(t, err, tc.pattern)
	}
}

// A wildcard over the deployer's own domain admits its subdomains and
// nothing that merely contains its name.
func TestCookieAuthWildcardSubdomains(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	ep, url := f.server(t, whoami, cookieOptions(f, []string{"*.app.example.com"}, false))
	cookie := "session=" + f.token(nil)
	for _, origin := range []string{"https://x.app.example.com", "https://a.b.app.example.com", "http://x.app.example.com"} {
		c := dialWith(t, url, hdr("Cookie", cookie, "Origin", origin))
		assert.Equal(t, "alice|alice|x", roundTrip(t, c, "x"), origin)
	}
	refused := []string{"https://app.example.com.evil.example", "https://evilapp.example.com", "https://app.example.com"}
	for _, origin := range refused {
		assert.Equal(t, http.StatusForbidden, dialRefused(t, url, hdr("Cookie", cookie, "Origin", origin)).StatusCode, origin)
	}
	assert.Equal(t, uint64(len(refused)), ep.Stats().Refused[wssafe.EventOriginRefused])
}

// tlsServer is server over TLS: it returns the endpoint, its wss:// URL and
// an HTTP client that trusts the server's certificate and, when clientCert
// is set, presents a client certificate.
func tlsServer(t *testing.T, h wssafe.Handler, opts *wssafe.Options, clientCert bool) (*wssafe.Endpoint, string, *http.Client) {
	t.Helper()
	ep, err := wssafe.New(h, opts)
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(ep)
	srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ep.Shutdown(ctx)
		srv.Close()
	})
	client := srv.Client()
	if clientCert {
		client.Transport.(*http.Transport).TLSClientConfig.Certificates = []tls.Certificate{selfSigned(t)}
	}
	return ep, "wss" + strings.TrimPrefix(srv.URL, "https"), client
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "client"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// originRow is one handshake: its Origin (with "SELF" standing for the
// endpoint's own host), extra headers, and the expected status.
type originRow struct {
	origin string
	extra  []string
	want   int
}

// runOriginRows dials each row with the cookie and checks the status; an
// accepted socket must be authenticated as the cookie's subject. It returns
// the number of refusals.
func runOriginRows(t *testing.T, url string, client *http.Client, cookie string, rows []originRow) uint64 {
	t.Helper()
	self := strings.TrimPrefix(strings.TrimPrefix(url, "wss://"), "ws://")
	var refused uint64
	for _, row := range rows {
		origin := strings.ReplaceAll(row.origin, "SELF", self)
		h := hdr(append([]string{"Origin", origin}, row.extra...)...)
		if cookie != "" {
			h.Set("Cookie", cookie)
		}
		opts := &websocket.DialOptions{HTTPHeader: h, HTTPClient: client}
		if row.want == http.StatusSwitchingProtocols {
			c := dial(t, url, opts)
			if cookie != "" {
				assert.Equal(t, "alice|alice|x", roundTrip(t, c, "x"), "%s %v", origin, row.extra)
			}
			c.Close(websocket.StatusNormalClosure, "")
			continue
		}
		refused++
		assert.Equal(t, row.want, handshake(t, url, opts).StatusCode, "%s %v", origin, row.extra)
	}
	return refused
}

const (
	accepted  = http.StatusSwitchingProtocols
	forbidden = http.StatusForbidden
)

// On a TLS endpoint with cookie authentication, an http:// page (which
// anyone on its path can rewrite) cannot open a socket with the cookie,
// same host or not; https:// pages can.
func TestCookieAuthHTTPOriginOnTLSEndpoint(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	ep, url, client := tlsServer(t, whoami, cookieOptions(f, []string{"app.example.com", "https://secure.example.com"}, false), false)
	refused := runOriginRows(t, url, client, "session="+f.token(nil), []originRow{
		{"https://SELF", nil, accepted},
		{"", nil, accepted}, // not a browser
		{"https://app.example.com", nil, accepted},
		{"https://secure.example.com", nil, accepted},
		{"http://SELF", nil, forbidden},
		{"HTTP://SELF", nil, forbidden},
		{"http://app.example.com", nil, forbidden},
		{"http://secure.example.com", nil, forbidden},
		{"ftp://SELF", nil, forbidden},
		{"https://evil.example", nil, forbidden},
	})
	assert.Equal(t, refused, ep.Stats().Refused[wssafe.EventOriginRefused])
	assert.Contains(t, f.logs.String(), `"event":"origin_refused"`)
	assert.Contains(t, f.logs.String(), `"origin":"http://127.0.0.1`)
}

// With InsecureAllowHTTPOrigins, an explicit http:// pattern admits that
// origin on the TLS endpoint, and nothing else over http.
func TestCookieAuthInsecureAllowHTTPOrigins(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	ep, url, client := tlsServer(t, whoami, cookieOptions(f, []string{"http://app.example.com", "other.example.com"}, true), false)
	refused := runOriginRows(t, url, client, "session="+f.token(nil), []originRow{
		{"http://app.example.com", nil, accepted},
		{"https://SELF", nil, accepted},
		{"https://other.example.com", nil, accepted},
		{"http://other.example.com", nil, forbidden},
		{"http://SELF", nil, forbidden},
	})
	assert.Equal(t, refused, ep.Stats().Refused[wssafe.EventOriginRefused])
	assert.Contains(t, f.logs.String(), `"event":"insecure_config"`)
	assert.Contains(t, f.logs.String(), `"pattern":"http://app.example.com"`)
	assert.NotContains(t, f.logs.String(), `"pattern":"other.example.com"`)
}

// On a plain-http endpoint both schemes pass: an https:// page is the
// TLS-terminating proxy case, an http:// one a plain deployment (which
// RequireTLS refuses). A trusted proxy that reports https makes the
// endpoint a TLS one; an untrusted peer's header counts for nothing.
func TestCookieAuthOriginSchemeOnPlainEndpoint(t *testing.T) {
	t.Parallel()
	xfp := func(v string) []string { return []string{"X-Forwarded-Proto", v} }
	for _, tc := range []struct {
		name    string
		trusted []string
		rows    []originRow
	}{
		{"no proxy", nil, []originRow{
			{"https://SELF", nil, accepted},
			{"http://SELF", nil, accepted},
			{"https://app.example.com", nil, accepted},
			{"http://app.example.com", nil, accepted},
			{"ftp://SELF", nil, forbidden},
			{"http://evil.example", nil, forbidden},
		}},
		{"trusted proxy", []string{"127.0.0.0/8"}, []originRow{
			{"https://SELF", xfp("https"), accepted},
			{"https://app.example.com", xfp("https"), accepted},
			{"http://SELF", xfp("https"), forbidden},
			{"http://app.example.com", xfp("https"), forbidden},
			{"http://SELF", []string{"Forwarded", "for=192.0.2.1;proto=https"}, forbidden},
			{"http://SELF", xfp("http"), accepted},
			{"http://SELF", nil, accepted},
			// The client's own "https" before the proxy's "http": plain.
			{"http://SELF", xfp("https, http"), accepted},
		}},
		{"untrusted peer", []string{"10.0.0.0/8"}, []originRow{
			{"http://SELF", xfp("https"), accepted},
			{"http://SELF", []string{"Forwarded", "proto=https"}, accepted},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newAuthFixture(t)
			o := cookieOptions(f, []string{"app.example.com"}, false)
			o.TrustedProxies = tc.trusted
			ep, url := f.server(t, whoami, o)
			refused := runOriginRows(t, url, nil, "session="+f.token(nil), tc.rows)
			assert.Equal(t, refused, ep.Stats().Refused[wssafe.EventOriginRefused])
		})
	}
}

// Without an ambient credential the scheme does not count: a token-only
// endpoint (or one without auth) keeps accepting an http:// page over TLS.
// A TLS client certificate is an ambient credential: then it counts.
func TestOriginSchemeWithoutCookies(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	tok := f.token(nil)
	o := f.options(func(a *wssafe.AuthOptions) { a.Sources = wssafe.FromHeader })
	o.OriginPatterns = []string{"app.example.com"}
	_, url, client := tlsServer(t, whoami, o, false)
	runOriginRows(t, url, client, "", []originRow{
		{"http://SELF", []string{"Authorization", "Bearer " + tok}, accepted},
		{"http://app.example.com", []string{"Authorization", "Bearer " + tok}, accepted},
	})

	_, url, client = tlsServer(t, echo, &wssafe.Options{Logger: slog.New(slog.DiscardHandler)}, false)
	runOriginRows(t, url, client, "", []originRow{{"http://SELF", nil, accepted}})

	ep, url, client := tlsServer(t, echo, &wssafe.Options{Logger: slog.New(slog.DiscardHandler), OriginPatterns: []string{"app.example.com", "http://legacy.example.com"}}, true)
	refused := runOriginRows(t, url, client, "", []originRow{
		{"https://SELF", nil, accepted},
		{"https://app.example.com", nil, accepted},
		{"http://legacy.example.com", nil, accepted},
		{"http://SELF", nil, forbidden},
		{"http://app.example.com", nil, forbidden},
	})
	assert.Equal(t, refused, ep.Stats().Refused[wssafe.EventOriginRefused])
}

func TestOriginCheck(t *testing.T) {
	t.Parallel()
	log, logs := newLogger()
	_, url := server(t, echo, &wssafe.Options{OriginPatterns: []string{"app.example.com"}, Logger: log})
	host := strings.TrimPrefix(url, "ws://")
	for _, tc := range []struct {
		origin string
		want   int
	}{
		{"", http.StatusSwitchingProtocols},                        // not a browser
		{"http://" + host, http.StatusSwitchingProtocols},          // same origin
		{"https://app.example.com", http.StatusSwitchingProtocols}, // allowed pattern
		{"https://evil.example", http.StatusForbidden},
		{"null", http.StatusForbidden},
		{"https://app.example.com.evil.example", http.StatusForbidden},
	} {
		h := http.Header{}
		if tc.origin != "" {
			h.Set("Origin", tc.origin)
		}
		c, resp, err := websocket.Dial(ctxT(t), url, &websocket.DialOptions{HTTPHeader: h})
		if tc.want == http.StatusSwitchingProtocols {
			require.NoError(t, err, tc.origin)
			c.Close(websocket.StatusNormalClosure, "")
		} else {
			require.Error(t, err, tc.origin)
		}
		assert.Equal(t, tc.want, resp.StatusCode, tc.origin)
	}
	assert.Contains(t, logs.String(), `"event":"origin_refused"`)
}

func TestInsecureSkipOriginCheckWarns(t *testing.T) {
	t.Parallel()
	log, logs := newLogger()
	_, url := server(t, echo, &wssafe.Options{InsecureSkipOriginCheck: true, Logger: log})
	c, _, err := websocket.Dial(ctxT(t), url, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://elsewhere.example"}}})
	require.NoError(t, err)
	c.Close(websocket.StatusNormalClosure, "")
	assert.Contains(t, logs.String(), `"event":"insecure_config"`)
}

func TestOriginRefused(t *testing.T) {
	t.Parallel()
	logger, logs := newLogger()
	ep, url := server(t, echo, &wssafe.Options{Logger: logger})
	resp := dialRefused(t, url, hdr("Origin", "https://evil.example"))
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Contains(t, logs.String(), `"event":"origin_refused"`)
	assert.Equal(t, uint64(1), ep.Stats().Refused[wssafe.EventOriginRefused])
}
