package wssafe_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
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

// pendingBody writes an opening handshake with hdr's header lines (see
// hostileRequest) on a new connection to the server behind url, and nothing
// after it: whatever body the head announces never comes.
func pendingBody(t *testing.T, url string, hdr map[string]string) net.Conn {
	t.Helper()
	c, _ := hostileRequest(t, url, http.MethodGet, hdr)
	return c.nc
}

// answerThenEOF reads the server's answer on nc and then the end of the
// connection, both before start+bound, and returns the answer and its head
// as sent (http.ReadResponse removes the Connection header it obeys).
func answerThenEOF(t *testing.T, nc net.Conn, start time.Time, bound time.Duration) (*http.Response, string) {
	t.Helper()
	nc.SetReadDeadline(start.Add(bound))
	var raw strings.Builder
	br := bufio.NewReader(io.TeeReader(nc, &raw))
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err, "no answer while the body is pending")
	_, err = io.Copy(io.Discard, resp.Body)
	require.NoError(t, err)
	resp.Body.Close()
	_, err = br.ReadByte()
	require.ErrorIs(t, err, io.EOF, "the server must close the connection, not wait for the body")
	assert.Less(t, time.Since(start), bound)
	head, _, _ := strings.Cut(raw.String(), "\r\n\r\n")
	return resp, head
}

// TestUpgradeWithBodyRefused: an upgrade request that announces a body is
// answered 400 at once, before any other check, without reading the body,
// and the server closes the connection. A bystander session is unaffected.
func TestUpgradeWithBodyRefused(t *testing.T) {
	t.Parallel()
	logger, logs := newLogger()
	ep, url := server(t, echo, &wssafe.Options{Logger: logger, SecurityLogInterval: -1})
	bystander := dial(t, url, nil)

	for _, row := range []struct {
		name string
		hdr  map[string]string
	}{
		{"trickling Content-Length", map[string]string{"Content-Length": "1000"}},
		{"chunked", map[string]string{"Transfer-Encoding": "chunked"}},
		{"cross-site with a body", map[string]string{"Origin": "https://evil.example", "Content-Length": "10"}},
		{"token with a body", map[string]string{"Authorization": "Bearer a.b.c", "Content-Length": "10"}},
	} {
		start := time.Now()
		nc := pendingBody(t, url, row.hdr)
		resp, head := answerThenEOF(t, nc, start, defaultBound)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, row.name)
		assert.Contains(t, head, "\r\nConnection: close\r\n", row.name)
		nc.Close()
	}

	// A trickle: one byte of the body, then the answer is already there.
	start := time.Now()
	nc := pendingBody(t, url, map[string]string{"Content-Length": "100"})
	nc.SetReadDeadline(start.Add(defaultBound))
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	nc.Write([]byte("x")) // the server may already have gone
	_, err = io.Copy(io.Discard, br)
	assert.False(t, isTimeout(err), "the connection stays open for the trickle: %v", err)

	assert.Equal(t, uint64(5), ep.Stats().Refused[wssafe.EventRequestBody])
	waitForLog(t, logs, `"event":"request_body"`)
	assert.Contains(t, logs.String(), `"level":"WARN","msg":"wssafe: upgrade request with a body refused"`)
	assert.Zero(t, ep.Stats().Refused[wssafe.EventOriginRefused], "the body check runs first")
	// The bystander's 101 reaches it before its server side counts it.
	require.Eventually(t, func() bool { return ep.Stats().Accepted == 1 }, 5*time.Second, 5*time.Millisecond, "the bystander only")

	// Content-Length: 0 is no body: the handshake goes on.
	nc = pendingBody(t, url, map[string]string{"Content-Length": "0"})
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err = http.ReadResponse(bufio.NewReader(nc), nil)
	require.NoError(t, err)
	assert.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, bystander.Write(ctx, websocket.MessageText, []byte("still here")))
	_, p, err := bystander.Read(ctx)
	require.NoError(t, err)
	assert.Equal(t, "Server received: still here", string(p))
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// hideBody hands ep a copy of the request that claims to have no body, as
// a router or middleware that rewrites requests might: net/http still holds
// the real, pending body. Every refusal must then close the connection
// instead of letting net/http wait to drain that body.
func hideBody(ep http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r2 := r.Clone(r.Context())
		r2.ContentLength, r2.TransferEncoding = 0, nil
		ep.ServeHTTP(w, r2)
	})
}

// TestRefusalsCloseTheConnection: every HTTP error the Endpoint writes,
// its own and coder/websocket's, comes with Connection: close, and the
// server closes the socket at once even with a request body pending.
func TestRefusalsCloseTheConnection(t *testing.T) {
	t.Parallel()
	secret := []byte(strings.Repeat("k", 16) + "0123456789abcdef")
	for _, row := range []struct {
		name   string
		opts   wssafe.Options
		before func(t *testing.T, ep *wssafe.Endpoint, url string) // puts the endpoint in the state that refuses
		hdr    map[string]string                                   // replaces the default header lines of the same names
		status int
	}{
		{name: "403 origin", hdr: map[string]string{"Origin": "https://evil.example"}, status: http.StatusForbidden},
		{name: "403 denied address", opts: wssafe.Options{DenyIPs: []string{"127.0.0.0/8"}}, status: http.StatusForbidden},
		{name: "403 TLS required", opts: wssafe.Options{RequireTLS: true}, status: http.StatusForbidden},
		{name: "401 no token", opts: wssafe.Options{Auth: &wssafe.AuthOptions{HMACSecret: secret, Sources: wssafe.FromHeader}},
			status: http.StatusUnauthorized},
		{name: "429 handshake rate", opts: wssafe.Options{HandshakeRate: wssafe.Rate{PerSecond: 0.001, Burst: 1}},
			before: func(t *testing.T, _ *wssafe.Endpoint, url string) { dial(t, url, nil).CloseNow() },
			status: http.StatusTooManyRequests},
		{name: "503 at capacity", opts: wssafe.Options{MaxConns: 1},
			before: func(t *testing.T, _ *wssafe.Endpoint, url string) { dial(t, url, nil) },
			status: http.StatusServiceUnavailable},
		{name: "503 shutting down",
			before: func(t *testing.T, ep *wssafe.Endpoint, _ string) {
				require.NoError(t, ep.Shutdown(context.Background()))
			},
			status: http.StatusServiceUnavailable},
		{name: "400 from coder/websocket (version 8)", hdr: map[string]string{"Sec-WebSocket-Version": "8"}, status: http.StatusBadRequest},
		{name: "426 from coder/websocket", hdr: map[string]string{"Upgrade": "h2c"}, status: http.StatusUpgradeRequired},
	} {
		t.Run(row.name, func(t *testing.T) {
			t.Parallel()
			opts := row.opts
			opts.Logger, _ = newLogger()
			ep, err := wssafe.New(echo, &opts)
			require.NoError(t, err)
			srv := httptest.NewServer(hideBody(ep))
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				ep.Shutdown(ctx)
				srv.Close()
			})
			addr := srv.Listener.Addr().String()
			if row.before != nil {
				row.before(t, ep, "ws://"+addr)
			}
			hdr := map[string]string{"Content-Length": "1000"}
			maps.Copy(hdr, row.hdr)
			start := time.Now()
			nc := pendingBody(t, "ws://"+addr, hdr)
			resp, head := answerThenEOF(t, nc, start, defaultBound)
			assert.Equal(t, row.status, resp.StatusCode)
			assert.Contains(t, head, "\r\nConnection: close\r\n")
			if row.status == http.StatusUpgradeRequired {
				assert.Contains(t, head, "\r\nConnection: Upgrade\r\n", "a 426 names Upgrade in Connection (RFC 9110 7.8)")
				assert.Equal(t, "websocket", resp.Header.Get("Upgrade"))
			}
		})
	}
}

// handshakeStatus dials url and returns the HTTP status of the handshake
// (101 when it succeeded, after closing the connection).
func handshakeStatus(t *testing.T, url string, opts *websocket.DialOptions) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, opts)
	if err == nil {
		c.Close(websocket.StatusNormalClosure, "")
	}
	require.NotNil(t, resp, "no HTTP response: %v", err)
	if resp.Body != nil {
		resp.Body.Close()
	}
	return resp.StatusCode
}

func TestRequireTLSRefusesPlainWS(t *testing.T) {
	t.Parallel()
	log, buf := newLogger()
	_, url := server(t, echo, &wssafe.Options{RequireTLS: true, Logger: log})
	assert.Equal(t, http.StatusForbidden, handshakeStatus(t, url, nil))
	assert.Contains(t, buf.String(), `"level":"WARN"`)
	assert.Contains(t, buf.String(), `"event":"tls_required"`)
}

func TestRequireTLSAcceptsTLS(t *testing.T) {
	t.Parallel()
	ep, err := wssafe.New(echo, &wssafe.Options{RequireTLS: true, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	srv := httptest.NewTLSServer(ep)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ep.Shutdown(ctx)
		srv.Close()
	})
	url := "wss" + strings.TrimPrefix(srv.URL, "https")
	c := dial(t, url, &websocket.DialOptions{HTTPClient: srv.Client()})
	assert.Equal(t, "Server received: over TLS", roundTrip(t, c, "over TLS"))
	require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))
}

func TestRequireTLSBehindProxy(t *testing.T) {
	t.Parallel()
	loopback := []string{"127.0.0.0/8", "::1/128"}
	for _, tc := range []struct {
		name    string
		trusted []string
		header  http.Header
		want    int
	}{
		{"trusted proxy, https", loopback, http.Header{"X-Forwarded-Proto": {"https"}}, http.StatusSwitchingProtocols},
		{"trusted proxy, wss", loopback, http.Header{"X-Forwarded-Proto": {"wss"}}, http.StatusSwitchingProtocols},
		{"trusted proxy, appended https", loopback, http.Header{"X-Forwarded-Proto": {"http, https"}}, http.StatusSwitchingProtocols},
		{"trusted proxy, Forwarded", loopback, http.Header{"Forwarded": {`for=192.0.2.7;proto=https;host=example.com`}}, http.StatusSwitchingProtocols},
		{"trusted proxy, http", loopback, http.Header{"X-Forwarded-Proto": {"http"}}, http.StatusForbidden},
		{"trusted proxy, no header", loopback, nil, http.StatusForbidden},
		{"trusted proxy, client's https before proxy's http", loopback, http.Header{"X-Forwarded-Proto": {"https, http"}}, http.StatusForbidden},
		{"trusted proxy, Forwarded says http", loopback, http.Header{"Forwarded": {"proto=http"}, "X-Forwarded-Proto": {"https"}}, http.StatusForbidden},
		{"trusted proxy, Forwarded appended", loopback, http.Header{"Forwarded": {"proto=https, for=192.0.2.7;proto=http"}}, http.StatusForbidden},
		{"untrusted peer spoofs header", []string{"10.0.0.0/8"}, http.Header{"X-Forwarded-Proto": {"https"}}, http.StatusForbidden},
		{"no trusted proxies", nil, http.Header{"X-Forwarded-Proto": {"https"}, "Forwarded": {"proto=https"}}, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, url := server(t, echo, &wssafe.Options{RequireTLS: true, TrustedProxies: tc.trusted})
			assert.Equal(t, tc.want, handshakeStatus(t, url, &websocket.DialOptions{HTTPHeader: tc.header}))
		})
	}
}
