package wssafe_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe"
)

// as returns a handshake header that authenticates as subject with an
// HS256 token of f's (for f.options with FromHeader).
func (f *authFixture) as(subject string) http.Header {
	return hdr("Authorization", "Bearer "+f.token(claims{"sub": subject}))
}

// dialFirst connects and authenticates as subject with a first-message
// token of f's, so that the subject is known only once the session is open.
func (f *authFixture) dialFirst(t *testing.T, url, subject string) *websocket.Conn {
	t.Helper()
	c := dialWith(t, url, nil)
	require.NoError(t, c.Write(ctxT(t), websocket.MessageText, []byte(f.token(claims{"sub": subject}))))
	return c
}

// headerAuth is f.options authenticating at the handshake only.
func headerAuth(f *authFixture) *wssafe.Options {
	return f.options(func(a *wssafe.AuthOptions) { a.Sources = wssafe.FromHeader })
}

// hdr builds a header from name, value pairs.
func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

// dialWith connects with extra handshake headers and closes at the end of
// the test.
func dialWith(t *testing.T, url string, h http.Header) *websocket.Conn {
	t.Helper()
	return dial(t, url, &websocket.DialOptions{HTTPHeader: h})
}

// dialRefused performs a handshake that must be refused and returns the
// HTTP response.
func dialRefused(t *testing.T, url string, h http.Header) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: h})
	if c != nil {
		c.CloseNow()
	}
	require.Error(t, err, "handshake was accepted")
	require.NotNil(t, resp, "no HTTP response: %v", err)
	if resp.Body != nil {
		resp.Body.Close()
	}
	return resp
}

// echoOnce sends msg and requires the echo reply.
func echoOnce(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(msg)))
	_, got, err := c.Read(ctx)
	require.NoError(t, err)
	require.Equal(t, "Server received: "+msg, string(got))
}

func TestIPLists(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		allow, deny []string
		refused     bool
	}{
		{"no lists", nil, nil, false},
		{"denied network", nil, []string{"127.0.0.0/8"}, true},
		{"denied address", nil, []string{"127.0.0.1"}, true},
		{"other network denied", nil, []string{"192.0.2.0/24"}, false},
		{"not in allow list", []string{"192.0.2.0/24", "2001:db8::/32"}, nil, true},
		{"in allow list", []string{"127.0.0.1/32"}, nil, false},
		{"deny wins over allow", []string{"127.0.0.0/8"}, []string{"127.0.0.1"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			logger, logs := newLogger()
			_, url := server(t, echo, &wssafe.Options{AllowIPs: tc.allow, DenyIPs: tc.deny, Logger: logger})
			if !tc.refused {
				echoOnce(t, dialWith(t, url, nil), "hi")
				return
			}
			resp := dialRefused(t, url, nil)
			assert.Equal(t, http.StatusForbidden, resp.StatusCode)
			assert.Contains(t, logs.String(), `"event":"ip_denied"`)
			assert.Contains(t, logs.String(), `"level":"WARN"`)
		})
	}
}

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

func TestConnCapPerIP(t *testing.T) {
	t.Parallel()
	logger, logs := newLogger()
	ep, url := server(t, echo, &wssafe.Options{MaxConnsPerIP: 2, TrustedProxies: []string{"127.0.0.1/32"}, Logger: logger})
	c1 := dialWith(t, url, nil)
	dialWith(t, url, nil)
	resp := dialRefused(t, url, nil)
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Equal(t, "5", resp.Header.Get("Retry-After"))
	assert.Contains(t, logs.String(), `"event":"ip_conn_limit"`)

	// Clients behind the trusted proxy count by their own address.
	echoOnce(t, dialWith(t, url, hdr("X-Forwarded-For", "198.51.100.1")), "other client")

	// A slot frees when a session ends.
	require.NoError(t, c1.Close(websocket.StatusNormalClosure, ""))
	require.Eventually(t, func() bool { return ep.Stats().Active == 2 }, 5*time.Second, 10*time.Millisecond)
	echoOnce(t, dialWith(t, url, nil), "again")
	assert.Equal(t, uint64(1), ep.Stats().Refused[wssafe.EventIPConnLimit])
}

func TestConnCapTotal(t *testing.T) {
	t.Parallel()
	ep, url := server(t, echo, &wssafe.Options{MaxConns: 2})
	dialWith(t, url, nil)
	dialWith(t, url, nil)
	resp := dialRefused(t, url, nil)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "5", resp.Header.Get("Retry-After"))
	assert.Equal(t, uint64(1), ep.Stats().Refused[wssafe.EventAtCapacity])
}

// A handshake refused by a guard holds no slot: many refusals do not
// exhaust the caps.
func TestRefusedHandshakesHoldNoSlot(t *testing.T) {
	t.Parallel()
	ep, url := server(t, echo, &wssafe.Options{MaxConns: 1, DenyIPs: []string{"203.0.113.0/24"},
		TrustedProxies: []string{"127.0.0.1/32"}})
	for range 5 {
		dialRefused(t, url, hdr("X-Forwarded-For", "203.0.113.1"))
	}
	// Failed upgrades (plain GET) release their slot too.
	for range 3 {
		resp, err := http.Get(strings.Replace(url, "ws://", "http://", 1))
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusUpgradeRequired, resp.StatusCode)
	}
	echoOnce(t, dialWith(t, url, nil), "hi")
	st := ep.Stats()
	assert.Equal(t, uint64(5), st.Refused[wssafe.EventIPDenied])
	assert.Equal(t, uint64(3), st.Refused[wssafe.EventHandshakeFailed])
}

func TestHandshakeRate(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	opts := &wssafe.Options{HandshakeRate: wssafe.Rate{PerSecond: 0.5, Burst: 2}, TrustedProxies: []string{"127.0.0.1/32"}}
	ep, url := serverWith(t, echo, opts, wssafe.Hooks{Clock: clock})
	dialWith(t, url, nil)
	dialWith(t, url, nil)
	resp := dialRefused(t, url, nil)
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Equal(t, "2", resp.Header.Get("Retry-After"), "one token refills in 2 s at 0.5/s")

	// Another address has its own bucket.
	dialWith(t, url, hdr("X-Forwarded-For", "198.51.100.1"))

	clock.Advance(2 * time.Second)
	dialWith(t, url, nil)
	assert.Equal(t, http.StatusTooManyRequests, dialRefused(t, url, nil).StatusCode)
	assert.Equal(t, uint64(2), ep.Stats().Refused[wssafe.EventHandshakeRate])
}

// Many source addresses (here through a trusted proxy, the way a spoofing
// attacker behind one would appear) cannot grow the limiter's state past
// its bound, and idle entries expire.
func TestHandshakeLimiterBounded(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	opts := &wssafe.Options{HandshakeRate: wssafe.Rate{PerSecond: 1, Burst: 1}, TrustedProxies: []string{"127.0.0.1/32"},
		DenyIPs: []string{"192.0.2.0/24"}}
	ep, url := serverWith(t, echo, opts, wssafe.Hooks{Clock: clock, MaxSources: 64})
	httpURL := strings.Replace(url, "ws://", "http://", 1)
	get := func(ip string) int {
		req, err := http.NewRequest(http.MethodGet, httpURL, nil)
		require.NoError(t, err)
		req.Header.Set("X-Forwarded-For", ip)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	max := 0
	for i := range 1000 {
		get(fmt.Sprintf("10.%d.%d.1", i/256, i%256))
		max = maxInt(max, wssafe.HandshakeSources(ep))
	}
	assert.LessOrEqual(t, max, 64)
	// The limit still holds for an address seen a moment ago.
	assert.Equal(t, http.StatusUpgradeRequired, get("198.51.100.1"))
	assert.Equal(t, http.StatusTooManyRequests, get("198.51.100.1"))
	// Denied addresses are refused before they reach the limiter.
	before := wssafe.HandshakeSources(ep)
	assert.Equal(t, http.StatusForbidden, get("192.0.2.1"))
	assert.Equal(t, before, wssafe.HandshakeSources(ep))

	// Idle entries expire: two generations later only the new ones remain.
	clock.Advance(time.Second)
	get("198.51.100.2")
	clock.Advance(time.Second)
	get("198.51.100.3")
	assert.Equal(t, 2, wssafe.HandshakeSources(ep))
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
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
	srv := httptest.NewUnstartedServer(ep)
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ep.Shutdown(ctx)
		srv.Close()
	})
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
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

func TestSubjectCapBeforeAccept(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	opts := headerAuth(f)
	opts.MaxConnsPerSubject = 2
	ep, url := f.server(t, echo, opts)
	a1 := dialWith(t, url, f.as("alice"))
	dialWith(t, url, f.as("alice"))
	resp := dialRefused(t, url, f.as("alice"))
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Equal(t, "5", resp.Header.Get("Retry-After"))
	echoOnce(t, dialWith(t, url, f.as("bob")), "bob is not alice")
	require.NoError(t, a1.Close(websocket.StatusNormalClosure, ""))
	require.Eventually(t, func() bool { return ep.Stats().Active == 2 }, 5*time.Second, 10*time.Millisecond) // a1 released its slot
	echoOnce(t, dialWith(t, url, f.as("alice")), "alice again")
	assert.Equal(t, uint64(1), ep.Stats().Refused[wssafe.EventSubjectConnLimit])
}

// When the subject is only known after the upgrade (first-message auth),
// the session over the cap is closed 1008 "too many connections".
func TestSubjectCapAfterAccept(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	opts := f.options(func(a *wssafe.AuthOptions) { a.Sources = wssafe.FromFirstMessage })
	opts.MaxConnsPerSubject = 2
	ep, url := f.server(t, echo, opts)
	echoOnce(t, f.dialFirst(t, url, "alice"), "one")
	echoOnce(t, f.dialFirst(t, url, "alice"), "two")
	ce := readClose(t, f.dialFirst(t, url, "alice"))
	assert.Equal(t, websocket.StatusPolicyViolation, ce.Code)
	assert.Equal(t, "too many connections", ce.Reason)
	require.Eventually(t, func() bool { return ep.Stats().Closed[wssafe.StatusPolicyViolation] == 1 }, 5*time.Second, 10*time.Millisecond)
	st := ep.Stats()
	assert.Equal(t, uint64(3), st.Accepted)
	assert.Equal(t, uint64(2), st.Opened)
	assert.Len(t, ep.Hub().BySubject("alice"), 2)
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

func TestGuardOptionsRefused(t *testing.T) {
	t.Parallel()
	for name, opts := range map[string]wssafe.Options{
		"bad allow entry":        {AllowIPs: []string{"10.0.0.0/33"}},
		"bad deny entry":         {DenyIPs: []string{"example.com"}},
		"negative cap":           {MaxConnsPerIP: -1},
		"unknown header":         {ForwardedHeader: "X-Real-IP"},
		"negative rate":          {MessageRate: wssafe.Rate{PerSecond: -1}},
		"burst without rate":     {HandshakeRate: wssafe.Rate{Burst: 5}},
		"negative burst":         {SubjectMessageRate: wssafe.Rate{PerSecond: 1, Burst: -1}},
		"byte burst below limit": {ReadLimit: 1024, ByteRate: wssafe.Rate{PerSecond: 100, Burst: 100}},
		"unbounded queue":        {SendQueueMessages: -1},
	} {
		_, err := wssafe.New(echo, &opts)
		assert.Error(t, err, name)
	}
	_, err := wssafe.New(echo, &wssafe.Options{ForwardedHeader: "forwarded", AllowIPs: []string{"2001:db8::1", "10.0.0.0/8"}})
	assert.NoError(t, err)
}
