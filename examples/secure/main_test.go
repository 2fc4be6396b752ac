package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe/examples/internal/serve"
)

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testSecret() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}

// start serves the example's handler for cfg (flags as given, the secret
// from the environment function) and returns its ws:// URL and its logs.
func start(t *testing.T, args []string, secret []byte) (string, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	cfg, err := parseConfig(args, func(k string) string {
		if k == secretEnv {
			return string(secret)
		}
		return ""
	}, logs)
	require.NoError(t, err)
	cfg.LogLevel = "debug"
	log, err := cfg.Logger(logs)
	require.NoError(t, err)
	h, ep, err := newHandler(cfg, log)
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		ep.Shutdown(context.Background())
		srv.Close()
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http"), logs
}

func sign(t *testing.T, alg jwa.SignatureAlgorithm, key any, claims map[string]any, kid string) string {
	t.Helper()
	tok := jwt.New()
	for k, v := range claims {
		require.NoError(t, tok.Set(k, v))
	}
	h := jws.NewHeaders()
	if kid != "" {
		require.NoError(t, h.Set(jws.KeyIDKey, kid))
	}
	b, err := jwt.Sign(tok, jwt.WithKey(alg, key, jws.WithProtectedHeaders(h)))
	require.NoError(t, err)
	return string(b)
}

// client runs the first-message client protocol: token first, then messages.
type client struct {
	t *testing.T
	c *websocket.Conn
}

func connect(t *testing.T, url string) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, nil)
	require.NoError(t, err)
	t.Cleanup(func() { c.CloseNow() })
	return &client{t: t, c: c}
}

func (c *client) send(msg string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(c.t, c.c.Write(ctx, websocket.MessageText, []byte(msg)))
}

func (c *client) recv() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, b, err := c.c.Read(ctx)
	return string(b), err
}

func (c *client) expect(want string) {
	got, err := c.recv()
	require.NoError(c.t, err)
	assert.Equal(c.t, want, got)
}

func (c *client) expectClose(code websocket.StatusCode, reason string) {
	_, err := c.recv()
	var ce websocket.CloseError
	require.ErrorAs(c.t, err, &ce)
	assert.Equal(c.t, code, ce.Code)
	assert.Equal(c.t, reason, ce.Reason)
}

func TestFirstMessageProtocol(t *testing.T) {
	t.Parallel()
	secret := testSecret()
	url, logs := start(t, nil, secret)
	tok := sign(t, jwa.HS256(), secret, map[string]any{"user_id": 42, "exp": time.Now().Add(time.Hour)}, "")
	c := connect(t, url)
	c.send(tok)
	c.expect("Authenticated!")
	for _, m := range []string{"hello", "xin chào"} {
		c.send(m)
		c.expect("Server received: " + m)
	}
	assert.Contains(t, logs.String(), "subject=42")
	assert.NotContains(t, logs.String(), tok)
}

func TestFirstMessageProtocolFailures(t *testing.T) {
	t.Parallel()
	secret := testSecret()
	url, logs := start(t, []string{"-auth-timeout", "100ms"}, secret)

	c := connect(t, url)
	expired := sign(t, jwa.HS256(), secret, map[string]any{"user_id": 42, "exp": time.Now().Add(-time.Minute)}, "")
	c.send(expired)
	c.expect("Token Expired")
	c.expectClose(3000, "token expired")

	c = connect(t, url)
	forged := sign(t, jwa.HS256(), testSecret(), map[string]any{"user_id": 42, "exp": time.Now().Add(time.Hour)}, "")
	c.send(forged)
	c.expectClose(3000, "invalid token")

	c = connect(t, url)
	noExp := sign(t, jwa.HS256(), secret, map[string]any{"user_id": 42}, "")
	c.send(noExp)
	c.expectClose(3000, "invalid token")

	c = connect(t, url)
	c.expectClose(3008, "authentication timeout")

	for _, tok := range []string{expired, forged, noExp} {
		assert.NotContains(t, logs.String(), tok)
	}
}

// TestPythonClientMigration is the original Python client, unchanged: the
// 10-byte secret "secret_key" and a token {"user_id": ...} without exp. It
// works only with both migration flags, each of which logs a warning.
func TestPythonClientMigration(t *testing.T) {
	t.Parallel()
	weakSecret := []byte("secret_key") // the original client's, deliberately weak
	tok := sign(t, jwa.HS256(), weakSecret, map[string]any{"user_id": 7}, "")

	_, _, err := newHandler(config{secret: weakSecret}, slog.New(slog.DiscardHandler))
	require.ErrorContains(t, err, "InsecureAllowWeakSecret")

	url, _ := start(t, []string{"-allow-weak-secret"}, weakSecret)
	c := connect(t, url)
	c.send(tok)
	c.expectClose(3000, "invalid token") // no exp

	url, logs := start(t, []string{"-allow-weak-secret", "-allow-missing-exp"}, weakSecret)
	c = connect(t, url)
	c.send(tok)
	c.expect("Authenticated!")
	c.send("hi")
	c.expect("Server received: hi")
	assert.Contains(t, logs.String(), "weak HMAC secret accepted")
	assert.Contains(t, logs.String(), "tokens without exp accepted")
}

func TestHeaderTokenAndJWKSFile(t *testing.T) {
	t.Parallel()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	pub, err := jwk.Import(&priv.PublicKey)
	require.NoError(t, err)
	require.NoError(t, pub.Set(jwk.KeyIDKey, "k1"))
	require.NoError(t, pub.Set(jwk.AlgorithmKey, jwa.ES256()))
	set := jwk.NewSet()
	require.NoError(t, set.AddKey(pub))
	b, err := json.Marshal(set)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "jwks.json")
	require.NoError(t, os.WriteFile(path, b, 0o600))

	url, _ := start(t, []string{"-jwks", path, "-issuer", "https://idp.example", "-audience", "chat"}, nil)
	claims := map[string]any{"sub": "alice", "iss": "https://idp.example", "aud": "chat", "exp": time.Now().Add(time.Hour)}
	tok := sign(t, jwa.ES256(), priv, claims, "k1")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"wssafe", "bearer." + tok}})
	require.NoError(t, err)
	c := &client{t: t, c: conn}
	t.Cleanup(func() { conn.CloseNow() })
	c.expect("Authenticated!")
	c.send("x")
	c.expect("Server received: x")

	claims["aud"] = "other"
	c = connect(t, url)
	c.send(sign(t, jwa.ES256(), priv, claims, "k1"))
	c.expectClose(3000, "invalid token")
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	none := func(string) string { return "" }
	var out bytes.Buffer
	_, err := parseConfig(nil, none, &out)
	require.Error(t, err)
	assert.Equal(t, "no verification key: set WSSAFE_JWT_SECRET (at least 32 random bytes) or pass -jwks FILE|URL", err.Error())

	// The secret never comes from a flag.
	_, err = parseConfig([]string{"-secret", "x"}, none, &out)
	require.Error(t, err)

	weak := func(string) string { return "short" }
	err = run(context.Background(), []string{"-addr", "127.0.0.1:0"}, weak, &out)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "\n")
	assert.Equal(t, "WSSAFE_JWT_SECRET is 5 bytes; HS256 needs at least 32 random bytes (openssl rand -base64 32); pass -allow-weak-secret only to migrate from an existing weak secret", err.Error())

	strong := func(string) string { return string(testSecret()) }
	for _, args := range [][]string{{"-log-level", "loud"}, {"-log-format", "xml"}, {"extra"}} {
		assert.Error(t, run(context.Background(), args, strong, &out), args)
	}
}

func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	secret := testSecret()
	logs := &syncBuffer{}
	cfg, err := parseConfig(nil, func(string) string { return string(secret) }, logs)
	require.NoError(t, err)
	log, err := cfg.Logger(logs)
	require.NoError(t, err)
	h, ep, err := newHandler(cfg, log)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve.Serve(ctx, log, ln, h, ep) }()

	c := connect(t, "ws://"+ln.Addr().String())
	c.send(sign(t, jwa.HS256(), secret, map[string]any{"user_id": 1, "exp": time.Now().Add(time.Hour)}, ""))
	c.expect("Authenticated!")
	cancel() // as SIGTERM does
	c.expectClose(websocket.StatusGoingAway, "going away")
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return after shutdown")
	}
	assert.Contains(t, logs.String(), "shutting down")
}
