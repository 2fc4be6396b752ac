package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe/examples/internal/serve"
)

// openFDs counts the test process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd:", err)
	}
	return len(ents)
}

// slowResult is what one slow-body client saw.
type slowResult struct {
	path    string
	status  string // the status line, if an answer came
	elapsed time.Duration
	err     error // what ended the connection; a timeout means the server never did
}

// slowBody writes head, whose Content-Length announces a body, and then
// trickles that body a byte at a time while reading whatever the server
// answers, until the server closes the connection (or 10 s at most).
func slowBody(addr, path, head string) slowResult {
	res := slowResult{path: path}
	start := time.Now()
	// From another loopback address than the real users', so that the
	// sign-in limit, which is per address, refuses the attacker, not them.
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		res.err = err
		return res
	}
	defer nc.Close()
	if _, err := io.WriteString(nc, head); err != nil {
		res.err = err
		return res
	}
	br := bufio.NewReader(nc)
	buf := make([]byte, 4<<10)
	var got []byte
	for range 100 { // 100 trickled bytes, 100 ms apart: 10 s at most
		nc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, err := br.Read(buf)
		if len(got) < 64 {
			got = append(got, buf[:min(n, 64)]...)
		}
		if err == nil {
			continue
		}
		if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
			res.err = err
			break
		}
		res.err = err
		nc.Write([]byte("x")) // may fail once the server has gone; the read says so
	}
	res.elapsed = time.Since(start)
	res.status, _, _ = strings.Cut(string(got), "\r\n")
	return res
}

func upgradeHead(host string) string {
	var key [16]byte
	rand.Read(key[:])
	return "GET /ws HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(key[:]) +
		"\r\nContent-Length: 1000\r\n\r\n"
}

// getToken gets a token from the API.
func getToken(t *testing.T, base, name, email string) string {
	t.Helper()
	resp, err := http.Post(base+"/api/login", "application/json",
		strings.NewReader(`{"name":"`+name+`","email":"`+email+`"}`))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var out struct{ Token string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return out.Token
}

func openSocket(t *testing.T, base, token string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/ws", &websocket.DialOptions{
		Subprotocols: []string{"chat.v1", "bearer." + token},
	})
	require.NoError(t, err)
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// waitType reads until a message of type typ (and, for "said", text)
// arrives.
func waitType(t *testing.T, c *websocket.Conn, typ string, text ...string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for range 100 {
		_, b, err := c.Read(ctx)
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(b, &m))
		if m["type"] == typ && (len(text) == 0 || m["text"] == text[0]) {
			return m
		}
	}
	t.Fatalf("no %q message", typ)
	return nil
}

// TestSlowBodiesAreCut: hundreds of requests from one address whose bodies
// trickle in, on the socket, on the page and on the sign-in API, are all
// cut within the configured timeout (the socket's before it, by wssafe),
// the process's descriptors return to where they were, and real users sign
// in and chat throughout.
func TestSlowBodiesAreCut(t *testing.T) {
	const timeout = 2 * time.Second
	saved, savedBody := serve.ServerLimits, bodyTimeout
	serve.ServerLimits.ReadTimeout, bodyTimeout = timeout, timeout
	t.Cleanup(func() { serve.ServerLimits, bodyTimeout = saved, savedBody })

	cfg, err := parse(nil, func(string) string { return "" }, io.Discard)
	require.NoError(t, err)
	a, err := newApp(cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve.Serve(ctx, slog.New(slog.DiscardHandler), ln, a.routes(), a.ep) }()
	t.Cleanup(func() { stop(); require.NoError(t, <-done) })
	addr := ln.Addr().String()
	base := "http://" + addr

	ann := openSocket(t, base, getToken(t, base, "Ann", "ann@example.com"))
	waitType(t, ann, "presence")
	baseline := openFDs(t)

	const perPath = 100
	heads := map[string]string{
		"/ws":        upgradeHead(addr),
		"/":          "GET / HTTP/1.1\r\nHost: " + addr + "\r\nContent-Length: 1000\r\n\r\n",
		"/api/login": "POST /api/login HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
	}
	results := make(chan slowResult, len(heads)*perPath)
	for path, head := range heads {
		for range perPath {
			go func() { results <- slowBody(addr, path, head) }()
		}
	}

	// While they are in flight, a real user signs in and chats.
	bob := openSocket(t, base, getToken(t, base, "Bob", "bob@example.org"))
	waitType(t, bob, "presence")
	require.NoError(t, ann.Write(context.Background(), websocket.MessageText, []byte(`{"type":"say","text":"still here"}`)))
	waitType(t, bob, "said", "still here")

	// The sign-in limit (per address) answers most slow sign-ins 429 before
	// their bodies are read; those within its burst are cut by the body
	// deadline, 408.
	want := map[string][]string{"/ws": {"HTTP/1.1 400 "}, "/": {"HTTP/1.1 200 "}, "/api/login": {"HTTP/1.1 408 ", "HTTP/1.1 429 "}}
	cutByDeadline := 0
	for range len(heads) * perPath {
		r := <-results
		var ne net.Error
		require.False(t, errors.As(r.err, &ne) && ne.Timeout(), "%s: the server never cut the trickle (%v)", r.path, r.err)
		assert.True(t, slices.ContainsFunc(want[r.path], func(p string) bool { return strings.HasPrefix(r.status, p) }),
			"%s answered %q", r.path, r.status)
		if r.path == "/api/login" && strings.HasPrefix(r.status, "HTTP/1.1 408 ") {
			cutByDeadline++
		}
		if r.path == "/ws" {
			assert.Less(t, r.elapsed, timeout, "wssafe refuses an upgrade with a body before any timeout")
		} else {
			// The slack is for a loaded machine: 300 connections on 2 cores.
			assert.Less(t, r.elapsed, timeout+4*time.Second, r.path)
		}
	}
	assert.Positive(t, cutByDeadline, "some slow sign-ins reach the body deadline")
	require.Eventually(t, func() bool { return openFDs(t) <= baseline+2 }, 5*time.Second, 50*time.Millisecond,
		"descriptors: %d before, %d after", baseline, openFDs(t))

	// And after.
	require.NoError(t, bob.Write(context.Background(), websocket.MessageText, []byte(`{"type":"say","text":"done"}`)))
	waitType(t, ann, "said", "done")
}

// TestLoginBodyBounded: sign-in reads its body under its own deadline and
// size bound, even on a server without ReadTimeout (httptest's): a
// trickle gets 408 after bodyTimeout, an oversized form 413.
func TestLoginBodyBounded(t *testing.T) {
	const timeout = 300 * time.Millisecond
	saved := bodyTimeout
	bodyTimeout = timeout
	t.Cleanup(func() { bodyTimeout = saved })
	_, base := chatServer(t)
	addr := strings.TrimPrefix(base, "http://")

	r := slowBody(addr, "/api/login", "POST /api/login HTTP/1.1\r\nHost: "+addr+
		"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
	var ne net.Error
	require.False(t, errors.As(r.err, &ne) && ne.Timeout(), "the trickle was never cut: %v", r.err)
	assert.True(t, strings.HasPrefix(r.status, "HTTP/1.1 408 "), r.status)
	assert.GreaterOrEqual(t, r.elapsed, timeout)
	assert.Less(t, r.elapsed, timeout+2*time.Second)

	resp, err := http.Post(base+"/api/login", "application/json",
		strings.NewReader(`{"name":"`+strings.Repeat("a", maxBody)+`","email":"a@example.com"}`))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
}

// TestRepliesWithoutBodyDoNotWaitForIt: a reply written without reading
// the request body (the sign-in limit's 429, a 415, a refresh or /stats,
// which need none, the page) goes out at once and the connection closes,
// even on a server without ReadTimeout (httptest's), instead of waiting
// for net/http to drain a body that trickles in.
func TestRepliesWithoutBodyDoNotWaitForIt(t *testing.T) {
	_, base := chatServer(t)
	addr := strings.TrimPrefix(base, "http://")
	head := func(method, path, ctype string) string {
		return method + " " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: " + ctype + "\r\nContent-Length: 1000\r\n\r\n"
	}
	// Spend the sign-in burst of slowBody's address, 127.0.0.2.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	client := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	defer client.CloseIdleConnections()
	for {
		resp, err := client.Post(base+"/api/login", "application/json", strings.NewReader(`{"name":"a","email":"a@example.com"}`))
		require.NoError(t, err)
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			break
		}
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	for _, tc := range []struct{ method, path, status string }{
		{"POST", "/api/login", "HTTP/1.1 429 "},
		{"POST", "/api/refresh", "HTTP/1.1 401 "},
		{"GET", "/stats", "HTTP/1.1 401 "},
		{"GET", "/", "HTTP/1.1 200 "},
	} {
		r := slowBody(addr, tc.path, head(tc.method, tc.path, "application/json"))
		var ne net.Error
		require.False(t, errors.As(r.err, &ne) && ne.Timeout(), "%s: the trickle was never cut: %v", tc.path, r.err)
		assert.True(t, strings.HasPrefix(r.status, tc.status), "%s answered %q", tc.path, r.status)
		assert.Less(t, r.elapsed, time.Second, tc.path)
	}
	// A sign-in with the wrong type, from an address with its burst left.
	nc, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer nc.Close()
	start := time.Now()
	_, err = io.WriteString(nc, head("POST", "/api/login", "text/plain"))
	require.NoError(t, err)
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnsupportedMediaType, resp.StatusCode)
	assert.True(t, resp.Close, "Connection: close")
	assert.Less(t, time.Since(start), time.Second)
}
