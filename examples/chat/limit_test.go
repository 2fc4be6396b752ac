package main

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeClock is the limiters' clock in tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// postFrom posts to url as the client at addr behind the trusted proxy
// 127.0.0.1; the X-Forwarded-For value is the proxy's.
func postFrom(t *testing.T, url, xff, token string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(`{"name":"Ann","email":"ann@example.com"}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp
}

func assertTooMany(t *testing.T, resp *http.Response, retry int, msg string) {
	t.Helper()
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, msg)
	assert.Equal(t, strconv.Itoa(retry), resp.Header.Get("Retry-After"), msg)
}

func TestRefreshIsRateLimitedPerSubject(t *testing.T) {
	clk := newFakeClock()
	_, base := chatServerWith(t, func(a *app) {
		a.refreshBySubject = newKeyedLimiter(time.Minute, 3, 100, clk.now)
	})
	ann := login(t, base, "Ann", "ann@example.com")
	bob := login(t, base, "Bob", "bob@example.org")
	token := ann.Token
	for i := range 3 {
		resp, out := post(t, base+"/api/refresh", token, "")
		require.Equal(t, http.StatusOK, resp.StatusCode, i)
		token = out["token"].(string)
	}
	resp := postFrom(t, base+"/api/refresh", "", token)
	assertTooMany(t, resp, 60, "a fourth refresh within the minute, with the newest token")
	resp = postFrom(t, base+"/api/refresh", "", ann.Token)
	assertTooMany(t, resp, 60, "every token of the subject shares the budget")
	resp = postFrom(t, base+"/api/refresh", "", bob.Token)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "another subject from the same address")
	resp = postFrom(t, base+"/api/refresh", "", token+"x")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "an invalid token names no subject")

	clk.advance(20 * time.Second)
	assertTooMany(t, postFrom(t, base+"/api/refresh", "", token), 40, "Retry-After counts down")
	clk.advance(40 * time.Second)
	assert.Equal(t, http.StatusOK, postFrom(t, base+"/api/refresh", "", token).StatusCode, "one token back after a minute")
	assertTooMany(t, postFrom(t, base+"/api/refresh", "", token), 60, "and only one")
}

func TestRefreshIsRateLimitedPerAddress(t *testing.T) {
	clk := newFakeClock()
	a, base := chatServerWith(t, func(a *app) {
		a.refreshByAddr = newKeyedLimiter(2*time.Second, 5, 100, clk.now)
	}, "-trusted-proxy", "127.0.0.1/32")
	var tokens []string
	for i := range 7 {
		tokens = append(tokens, login(t, base, "User"+strconv.Itoa(i), "u"+strconv.Itoa(i)+"@example.com").Token)
	}
	for i := range 5 {
		resp := postFrom(t, base+"/api/refresh", "192.0.2.1", tokens[i])
		require.Equal(t, http.StatusOK, resp.StatusCode, i)
	}
	assertTooMany(t, postFrom(t, base+"/api/refresh", "192.0.2.1", tokens[5]), 2, "a sixth subject from one address")
	assertTooMany(t, postFrom(t, base+"/api/refresh", "192.0.2.1", "forged"), 2, "limited before the token is checked")
	assertTooMany(t, postFrom(t, base+"/api/refresh", "198.51.100.7, 192.0.2.1", tokens[5]), 2,
		"what the client wrote left of the proxy's entry is ignored")
	assert.Equal(t, http.StatusOK, postFrom(t, base+"/api/refresh", "192.0.2.2", tokens[5]).StatusCode, "another address")
	assert.Equal(t, http.StatusUnauthorized, postFrom(t, base+"/api/refresh", "192.0.2.3", "forged").StatusCode)
	clk.advance(2 * time.Second)
	assert.Equal(t, http.StatusOK, postFrom(t, base+"/api/refresh", "192.0.2.1", tokens[6]).StatusCode, "refilled")
	assert.Equal(t, 3, a.refreshByAddr.len())
}

func TestSignInIsRateLimitedPerAddress(t *testing.T) {
	clk := newFakeClock()
	_, base := chatServerWith(t, func(a *app) {
		a.signIns = newKeyedLimiter(30*time.Second, 2, 100, clk.now)
	}, "-trusted-proxy", "127.0.0.1/32")
	for range 2 {
		assert.Equal(t, http.StatusOK, postFrom(t, base+"/api/login", "192.0.2.1", "").StatusCode)
	}
	assertTooMany(t, postFrom(t, base+"/api/login", "192.0.2.1", ""), 30, "a third sign-in")
	assert.Equal(t, http.StatusOK, postFrom(t, base+"/api/login", "192.0.2.2", "").StatusCode, "another address")
}

func TestKeyedLimiterBoundsItsMemory(t *testing.T) {
	clk := newFakeClock()
	k := newKeyedLimiter(time.Second, 2, 3, clk.now)
	for _, key := range []string{"a", "a", "b", "c"} {
		ok, _ := k.allow(key)
		require.True(t, ok, key)
	}
	ok, retry := k.allow("a")
	assert.False(t, ok, "a's burst is spent")
	assert.Equal(t, time.Second, retry)
	ok, _ = k.allow("a")
	assert.False(t, ok, "a refused attempt takes nothing, and gives nothing back")

	// A fourth key drops the least recently used one, b: the table stays
	// at three however many keys arrive.
	for i := range 1000 {
		k.allow("flood" + strconv.Itoa(i))
		require.LessOrEqual(t, k.len(), 3)
	}
	// Idle keys expire once their bucket would be full again (2 s).
	clk.advance(2 * time.Second)
	ok, _ = k.allow("z")
	assert.True(t, ok)
	assert.Equal(t, 1, k.len(), "every idle key is gone")
}

func TestClientKey(t *testing.T) {
	a, _ := chatServer(t, "-trusted-proxy", "10.0.0.0/8,192.0.2.1/32")
	for _, tc := range []struct{ remote, xff, want string }{
		{"198.51.100.1:1234", "", "198.51.100.1"},
		{"198.51.100.1:1234", "203.0.113.9", "198.51.100.1"}, // not a trusted peer: its header is not read
		{"10.1.2.3:1234", "203.0.113.9", "203.0.113.9"},
		{"10.1.2.3:1234", "203.0.113.8, 203.0.113.9, 192.0.2.1", "203.0.113.9"},
		{"10.1.2.3:1234", "unknown, 10.9.9.9", "10.9.9.9"},
		{"[2001:db8:1:2:3:4:5:6]:443", "", "2001:db8:1:2::/64"},
		{"[::ffff:198.51.100.1]:1", "", "198.51.100.1"},
	} {
		r := httptest.NewRequest("POST", "/api/refresh", nil)
		r.RemoteAddr = tc.remote
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		assert.Equal(t, tc.want, a.clientKey(r), "%s %s", tc.remote, tc.xff)
	}
}
