package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// chatServer runs the whole app (page, API, socket) on httptest.
func chatServer(t *testing.T, args ...string) (*app, string) {
	t.Helper()
	return chatServerWith(t, nil, args...)
}

// chatServerWith is chatServer with setup run on the app before it serves.
func chatServerWith(t *testing.T, setup func(*app), args ...string) (*app, string) {
	t.Helper()
	cfg, err := parse(args, func(string) string { return "" }, io.Discard)
	require.NoError(t, err)
	a, err := newApp(cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	if setup != nil {
		setup(a)
	}
	srv := httptest.NewServer(a.routes())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		a.ep.Shutdown(ctx)
		srv.Close()
	})
	return a, srv.URL
}

func post(t *testing.T, url, auth string, body string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return resp, out
}

func login(t *testing.T, base, name, email string) tokenReply {
	t.Helper()
	resp, out := post(t, base+"/api/login", "", `{"name":"`+name+`","email":"`+email+`"}`)
	require.Equal(t, http.StatusOK, resp.StatusCode, out)
	b, _ := json.Marshal(out)
	var tr tokenReply
	require.NoError(t, json.Unmarshal(b, &tr))
	return tr
}

// connect opens a socket with token; see dial.
func connect(t *testing.T, base, token string) *websocket.Conn {
	t.Helper()
	c, _, err := dial(t, base, token)
	require.NoError(t, err)
	return c
}

// next reads messages until one whose type is among types arrives.
func next(t *testing.T, c *websocket.Conn, types ...string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, b, err := c.Read(ctx)
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(b, &m))
		if typ, ok := m["type"].(string); ok && slices.Contains(types, typ) {
			return m
		}
	}
}

func send(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	require.NoError(t, c.Write(context.Background(), websocket.MessageText, []byte(msg)))
}

func TestLoginValidates(t *testing.T) {
	_, base := chatServer(t)
	for _, tc := range []struct{ body, field string }{
		{`{"name":"Ann","email":"ann@@example.com"}`, "email"},
		{`{"name":"Ann","email":"Ann <ann@example.com>"}`, "email"},
		{`{"name":"","email":"ann@example.com"}`, "name"},
		{`{"name":" Ann","email":"ann@example.com"}`, "name"},
		{`{"name":"A\u0000n","email":"ann@example.com"}`, "name"},
		{`{"name":"Ann","email":"ann@example.com","admin":true}`, ""},
		{`{"name":"Ann","name":"Eve","email":"ann@example.com"}`, ""},
		{`{"name":"Ann","NAME":"Eve","email":"ann@example.com"}`, ""},
		{`{"name":null,"email":"ann@example.com"}`, "name"},
		{`{"name":"Ann","email":"ann@example.com"} {}`, ""},
		{"{\"name\":\"Ann\xff\",\"email\":\"ann@example.com\"}", ""},
		{`null`, ""},
		{`[]`, ""},
	} {
		resp, out := post(t, base+"/api/login", "", tc.body)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, tc.body)
		assert.Equal(t, "error", out["type"], tc.body)
		if tc.field != "" {
			assert.Equal(t, tc.field, out["field"], tc.body)
		}
		assert.NotContains(t, out["message"], "example.com", "no echo of the input")
	}
	req, _ := http.NewRequest("POST", base+"/api/login", strings.NewReader(`name=a`))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnsupportedMediaType, resp.StatusCode, "a cross-site form cannot sign in")

	resp, _ = post(t, base+"/api/login", "", `{"name":"`+strings.Repeat("a", 5000)+`"}`)
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
}

func TestRefresh(t *testing.T) {
	_, base := chatServer(t)
	tr := login(t, base, "Ann", "ann@example.com")
	resp, out := post(t, base+"/api/refresh", tr.Token, "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, tr.Subject, out["subject"])
	assert.Equal(t, "Ann", out["name"])

	resp, _ = post(t, base+"/api/refresh", tr.Token+"x", "")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp, _ = post(t, base+"/api/refresh", "", "")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

func TestChatOverTheSocket(t *testing.T) {
	_, base := chatServer(t)
	ann := login(t, base, "Ann", "ann@example.com")
	bob := login(t, base, "Bob", "bob@example.org")
	ca := connect(t, base, ann.Token)
	next(t, ca, "presence")
	cb := connect(t, base, bob.Token)
	p := next(t, ca, "presence")
	assert.Len(t, p["online"], 2)

	send(t, ca, `{"type":"say","text":"hi bob"}`)
	said := next(t, cb, "said")
	assert.Equal(t, "hi bob", said["text"])
	assert.Equal(t, ann.Subject, said["from"])
	assert.Equal(t, "Ann", said["name"])
	assert.Len(t, said["id"], 12)

	send(t, cb, `{"type":"say","text":"`+strings.Repeat("x", 501)+`"}`)
	e := next(t, cb, "error")
	assert.Equal(t, "text", e["field"])
	send(t, cb, `{"type":"say","text":"hi","html":"<b>"}`)
	assert.Equal(t, "unknown_field", next(t, cb, "error")["code"])
	send(t, cb, `{"type":"rename","name":"Robert"}`)
	r := next(t, ca, "renamed")
	assert.Equal(t, "Robert", r["name"])
	assert.Equal(t, "Bob", r["old"])

	// In-band refresh: a new token for the same subject moves the expiry.
	resp, fresh := post(t, base+"/api/refresh", bob.Token, "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	send(t, cb, `{"type":"refresh","token":"`+fresh["token"].(string)+`"}`)
	assert.NotNil(t, next(t, cb, "refreshed")["exp"])
	// ... and another subject's token closes 3003.
	send(t, cb, `{"type":"refresh","token":"`+ann.Token+`"}`)
	_, _, err := cb.Read(context.Background())
	assert.Equal(t, websocket.StatusCode(3003), websocket.CloseStatus(err))
	assert.Equal(t, "left", next(t, ca, "left")["type"])
}

func TestSocketNeedsAToken(t *testing.T) {
	_, base := chatServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, strings.Replace(base, "http", "ws", 1)+"/ws", &websocket.DialOptions{Subprotocols: []string{"chat.v1"}})
	require.Error(t, err)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

func TestPageAndStats(t *testing.T) {
	_, base := chatServer(t)
	resp, err := http.Get(base + "/")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Contains(t, string(body), "<title>wssafe chat</title>")
	assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'self'")

	resp, st := getStats(t, base, login(t, base, "Ann", "ann@example.com").Token)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, st, "sessions")
}

func TestParse(t *testing.T) {
	cfg, err := parse(nil, func(string) string { return "" }, io.Discard)
	require.NoError(t, err)
	assert.Len(t, cfg.secret, 32, "a random secret when none is set")
	assert.Equal(t, "127.0.0.1:8080", cfg.Addr)

	_, err = parse([]string{"-token-ttl", "1s"}, func(string) string { return "" }, io.Discard)
	assert.ErrorContains(t, err, "-token-ttl")
	_, err = newIssuer([]byte("short"), time.Minute)
	assert.Error(t, err)
	var out bytes.Buffer
	_, err = parse([]string{"stray"}, func(string) string { return "" }, &out)
	assert.Error(t, err)
}
