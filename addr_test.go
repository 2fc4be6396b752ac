package wssafe_test

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wssafe/wssafe"
)

// A client that is not a trusted proxy cannot choose its address with a
// forwarding header: not to get out of a deny list, not into an allow list.
func TestSpoofedForwardingHeadersIgnored(t *testing.T) {
	t.Parallel()
	spoof := hdr("X-Forwarded-For", "203.0.113.7", "Forwarded", "for=203.0.113.7")
	_, url := server(t, echo, &wssafe.Options{AllowIPs: []string{"203.0.113.0/24"}})
	assert.Equal(t, http.StatusForbidden, dialRefused(t, url, spoof).StatusCode)

	_, url = server(t, echo, &wssafe.Options{DenyIPs: []string{"127.0.0.0/8"}})
	assert.Equal(t, http.StatusForbidden, dialRefused(t, url, spoof).StatusCode)

	ep, url := server(t, echo, &wssafe.Options{DenyIPs: []string{"203.0.113.0/24"}})
	c := dialWith(t, url, spoof)
	echoOnce(t, c, "hi")
	ss := ep.Hub().Sessions()
	require.Len(t, ss, 1)
	assert.Equal(t, netip.MustParseAddr("127.0.0.1"), ss[0].ClientIP())
}

func TestTrustedProxyForwardedFor(t *testing.T) {
	t.Parallel()
	ep, url := server(t, echo, &wssafe.Options{
		TrustedProxies: []string{"127.0.0.1/32", "10.0.0.0/8"},
		DenyIPs:        []string{"203.0.113.0/24"},
	})
	// The proxy reports a denied client.
	assert.Equal(t, http.StatusForbidden, dialRefused(t, url, hdr("X-Forwarded-For", "203.0.113.7")).StatusCode)
	// Through two trusted hops.
	assert.Equal(t, http.StatusForbidden,
		dialRefused(t, url, hdr("X-Forwarded-For", "203.0.113.7, 10.1.2.3")).StatusCode)
	// The client prepended a denied address; the proxy appended the real one.
	c := dialWith(t, url, hdr("X-Forwarded-For", "203.0.113.7, 198.51.100.9"))
	echoOnce(t, c, "hi")
	ss := ep.Hub().Sessions()
	require.Len(t, ss, 1)
	assert.Equal(t, netip.MustParseAddr("198.51.100.9"), ss[0].ClientIP())
	assert.Equal(t, "127.0.0.1", must(net.SplitHostPort(ss[0].RemoteAddr())))
}

func must[T any](v T, _ ...any) T { return v }

// Endpoint.ClientIP is the address the session gets, for the
// application's own limits beside the socket.
func TestEndpointClientIP(t *testing.T) {
	t.Parallel()
	ep, url := server(t, echo, &wssafe.Options{TrustedProxies: []string{"127.0.0.1/32"}, ForwardedHeader: "Forwarded"})
	c := dialWith(t, url, hdr("Forwarded", "for=198.51.100.9", "X-Forwarded-For", "203.0.113.7"))
	echoOnce(t, c, "hi")
	ss := ep.Hub().Sessions()
	require.Len(t, ss, 1)
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = ss[0].RemoteAddr()
	r.Header = hdr("Forwarded", "for=198.51.100.9", "X-Forwarded-For", "203.0.113.7")
	assert.Equal(t, netip.MustParseAddr("198.51.100.9"), ep.ClientIP(r))
	assert.Equal(t, ss[0].ClientIP(), ep.ClientIP(r))
	r.RemoteAddr = "192.0.2.1:1234" // not a trusted proxy: its headers are not read
	assert.Equal(t, netip.MustParseAddr("192.0.2.1"), ep.ClientIP(r))
}

func TestClientIP(t *testing.T) {
	t.Parallel()
	trusted := []string{"127.0.0.1/32", "10.0.0.0/8", "fd00::/8"}
	for _, tc := range []struct {
		name      string
		remote    string
		forwarded bool // read Forwarded instead of X-Forwarded-For
		header    http.Header
		want      string
	}{
		{"untrusted peer, header ignored", "192.0.2.1:1234", false, hdr("X-Forwarded-For", "203.0.113.1"), "192.0.2.1"},
		{"trusted peer, no header", "127.0.0.1:1234", false, nil, "127.0.0.1"},
		{"one hop", "127.0.0.1:1234", false, hdr("X-Forwarded-For", "203.0.113.1"), "203.0.113.1"},
		{"spoofed left part", "127.0.0.1:1234", false, hdr("X-Forwarded-For", "1.2.3.4, 203.0.113.1"), "203.0.113.1"},
		{"trusted hops skipped", "127.0.0.1:1234", false, hdr("X-Forwarded-For", "203.0.113.1,10.0.0.2, 10.0.0.3"), "203.0.113.1"},
		{"several header lines", "127.0.0.1:1234", false, hdr("X-Forwarded-For", "1.2.3.4", "X-Forwarded-For", "203.0.113.1, 10.0.0.2"), "203.0.113.1"},
		{"all trusted", "127.0.0.1:1234", false, hdr("X-Forwarded-For", "10.0.0.9, 10.0.0.2"), "10.0.0.9"},
		{"garbage stops at the reporting hop", "127.0.0.1:1234", false, hdr("X-Forwarded-For", "203.0.113.1, unknown, 10.0.0.2"), "10.0.0.2"},
		{"empty elements skipped", "127.0.0.1:1234", false, hdr("X-Forwarded-For", "203.0.113.1,, "), "203.0.113.1"},
		{"address with port", "127.0.0.1:1234", false, hdr("X-Forwarded-For", "203.0.113.1:5555"), "203.0.113.1"},
		{"IPv6", "127.0.0.1:1234", false, hdr("X-Forwarded-For", "2001:db8::1"), "2001:db8::1"},
		{"IPv6 bracketed with port", "127.0.0.1:1234", false, hdr("X-Forwarded-For", "[2001:db8::1]:443"), "2001:db8::1"},
		{"IPv4-mapped IPv6", "127.0.0.1:1234", false, hdr("X-Forwarded-For", "::ffff:203.0.113.1"), "203.0.113.1"},
		{"IPv6 trusted peer", "[fd00::1]:1234", false, hdr("X-Forwarded-For", "2001:db8::5"), "2001:db8::5"},
		{"Forwarded not read by default", "127.0.0.1:1234", false, hdr("Forwarded", "for=203.0.113.1"), "127.0.0.1"},
		{"Forwarded", "127.0.0.1:1234", true, hdr("Forwarded", `for=198.51.100.1;proto=https, for="[2001:db8::7]:4711";by=10.0.0.1`), "2001:db8::7"},
		{"Forwarded trusted hop", "127.0.0.1:1234", true, hdr("Forwarded", "for=198.51.100.1, For=10.0.0.5"), "198.51.100.1"},
		{"Forwarded unknown", "127.0.0.1:1234", true, hdr("Forwarded", "for=unknown"), "127.0.0.1"},
		{"Forwarded without for", "127.0.0.1:1234", true, hdr("Forwarded", "proto=https"), "127.0.0.1"},
		{"X-Forwarded-For not read with Forwarded", "127.0.0.1:1234", true, hdr("X-Forwarded-For", "203.0.113.1"), "127.0.0.1"},
		{"unterminated quote left of the proxy's element", "127.0.0.1:1234", true, hdr("Forwarded", `for="1.2.3.4, , for=203.0.113.9`), "203.0.113.9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tc.remote
			r.Header = tc.header
			if r.Header == nil {
				r.Header = http.Header{}
			}
			opts := &wssafe.Options{TrustedProxies: trusted}
			if tc.forwarded {
				opts.ForwardedHeader = "Forwarded"
			}
			got, err := wssafe.ClientIP(opts, r)
			require.NoError(t, err)
			assert.Equal(t, netip.MustParseAddr(tc.want), got)
		})
	}
}

// TestIPv6 runs the guards over a real IPv6 loopback connection.
func TestIPv6(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp6", "[::1]:0")
	require.NoError(t, err, "IPv6 loopback unavailable: the IPv6 address logic is covered by TestClientIP only")
	logger, _ := newLogger()
	ep, err := wssafe.New(echo, &wssafe.Options{AllowIPs: []string{"::1/128", "2001:db8:1::/48"},
		DenyIPs: []string{"127.0.0.0/8"}, MaxConnsPerIP: 2, TrustedProxies: []string{"::1/128"}, Logger: logger})
	require.NoError(t, err)
	url := serveOn(t, ep, func(old net.Listener) net.Listener { old.Close(); return l })
	require.Contains(t, url, "[::1]")
	c := dialWith(t, url, nil)
	echoOnce(t, c, "over IPv6")
	require.Len(t, ep.Hub().Sessions(), 1)
	assert.Equal(t, netip.MustParseAddr("::1"), ep.Hub().Sessions()[0].ClientIP())

	// Behind the trusted IPv6 proxy, two addresses of one /64 share the
	// per-address cap; another /64 does not.
	dialWith(t, url, hdr("X-Forwarded-For", "2001:db8:1:2::a"))
	dialWith(t, url, hdr("X-Forwarded-For", "2001:db8:1:2::b"))
	resp := dialRefused(t, url, hdr("X-Forwarded-For", "2001:db8:1:2:ffff::c"))
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	dialWith(t, url, hdr("X-Forwarded-For", "2001:db8:1:3::a"))
	// An IPv6 client outside the allow list.
	assert.Equal(t, http.StatusForbidden, dialRefused(t, url, hdr("X-Forwarded-For", "2001:db8::1")).StatusCode)
}

func TestTrustedProxiesCoveringEveryAddress(t *testing.T) {
	t.Parallel()
	for name, list := range map[string][]string{
		"IPv4 default route": {"0.0.0.0/0"},
		"IPv6 default route": {"10.0.0.0/8", "::/0"},
		"two IPv4 halves":    {"0.0.0.0/1", "128.0.0.0/1"},
		"IPv6 halves":        {"::/1", "8000::/1"},
		"IPv4 in pieces":     {"128.0.0.0/1", "0.0.0.0/2", "64.0.0.0/3", "96.0.0.0/3", "10.0.0.0/8"},
		"unmasked halves":    {"1.2.3.4/1", "200.0.0.1/1"},
	} {
		_, err := wssafe.New(echo, &wssafe.Options{TrustedProxies: list})
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), "any client could choose its own address", name)
		assert.Contains(t, err.Error(), "InsecureTrustAllProxies", name)
	}
	for name, list := range map[string][]string{
		"proxies' networks": {"10.0.0.0/8", "192.168.0.0/16", "fd00::/8"},
		"half of IPv4":      {"0.0.0.0/1"},
		"all but one /32":   {"0.0.0.0/1", "128.0.0.0/2", "192.0.0.0/3", "224.0.0.0/4", "240.0.0.0/5", "248.0.0.0/6", "252.0.0.0/7", "254.0.0.0/8"},
	} {
		_, err := wssafe.New(echo, &wssafe.Options{TrustedProxies: list, Logger: quiet()})
		assert.NoError(t, err, name)
	}

	// The Insecure option accepts it, says so once, and the forwarded
	// address is then believed from any peer.
	logger, rec := newRecorder()
	o := &wssafe.Options{TrustedProxies: []string{"0.0.0.0/0"}, InsecureTrustAllProxies: true, Logger: logger,
		DenyIPs: []string{"192.0.2.7"}}
	_, url := server(t, echo, o)
	assert.Len(t, rec.warnings(wssafe.EventInsecureConfig), 1)
	assert.Contains(t, rec.warnings(wssafe.EventInsecureConfig)[0], "trusted as a proxy")
	assert.Equal(t, http.StatusForbidden, dialRefused(t, url, hdr("X-Forwarded-For", "192.0.2.7")).StatusCode)
}

// A forwarding header from a peer not in TrustedProxies is ignored, and
// said so at Info, once per peer per minute, naming the header and at most
// 64 bytes of its value. From a trusted proxy, or without the header,
// nothing is said.
func TestUntrustedForwardedLogged(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	logger, lines := newRecorder()
	opts := &wssafe.Options{Logger: logger}
	ep, url := serverWith(t, echo, opts, wssafe.Hooks{Clock: clock})
	const event = wssafe.EventUntrustedForwarded

	dialWith(t, url, nil).CloseNow()
	assert.Zero(t, lines.count(slog.LevelInfo, event), "no header, no line")

	long := "203.0.113.7" + strings.Repeat(", 198.51.100.1", 100)
	for range 5 {
		c := dialWith(t, url, hdr("X-Forwarded-For", long))
		echoOnce(t, c, "ignored, not refused")
		c.CloseNow()
	}
	require.Equal(t, 1, lines.count(slog.LevelInfo, event), "once per source")
	got := lines.linesOf(event)[0]
	assert.Equal(t, "X-Forwarded-For", got["header"])
	assert.Equal(t, long[:64], got["value"], "the value bounded")
	assert.Equal(t, "127.0.0.1", got["client"])

	clock.Advance(30 * time.Second)
	dialWith(t, url, hdr("X-Forwarded-Proto", "https")).CloseNow()
	assert.Equal(t, 1, lines.count(slog.LevelInfo, event), "still within the minute")
	clock.Advance(30 * time.Second)
	dialWith(t, url, hdr("Forwarded", "for=203.0.113.7;proto=https")).CloseNow()
	require.Equal(t, 2, lines.count(slog.LevelInfo, event), "a minute later, again")
	got = lines.linesOf(event)[1]
	assert.Equal(t, "Forwarded", got["header"])
	assert.Equal(t, "5", got["suppressed"])
	assert.Zero(t, ep.Stats().Refused[event], "a diagnostic, not a refusal")

	// From a trusted proxy the headers are believed: nothing to say.
	trusted := &wssafe.Options{Logger: logger, TrustedProxies: []string{"127.0.0.1/32", "::1/128"}}
	_, turl := serverWith(t, echo, trusted, wssafe.Hooks{Clock: clock})
	clock.Advance(time.Hour)
	dialWith(t, turl, hdr("X-Forwarded-For", "203.0.113.7", "X-Forwarded-Proto", "https")).CloseNow()
	assert.Equal(t, 2, lines.count(slog.LevelInfo, event))
}
