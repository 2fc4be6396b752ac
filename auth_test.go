package wssafe_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wssafe/wssafe"
)

// testRSAKey is generated once: RSA key generation is slow under -race.
var testRSAKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

type claims map[string]any

// authFixture holds one test's keys, clock and logs, and remembers every
// token it minted so that the test can assert none reached a log line.
type authFixture struct {
	t      *testing.T
	secret []byte
	clock  *wssafe.FakeClock
	logs   *logBuffer
	mu     sync.Mutex
	tokens []string
}

func newAuthFixture(t *testing.T) *authFixture {
	t.Helper()
	f := &authFixture{t: t, secret: make([]byte, 32)}
	rand.Read(f.secret)
	// Real time as the start: the serve loop's network deadlines are real.
	f.clock = wssafe.NewFakeClock(time.Now().Truncate(time.Second))
	t.Cleanup(f.assertNoTokenLogged)
	return f
}

// options returns endpoint options with HMAC auth from every handshake
// source and the first message; mutate adjusts the auth options.
func (f *authFixture) options(mutate func(*wssafe.AuthOptions)) *wssafe.Options {
	a := &wssafe.AuthOptions{
		HMACSecret: f.secret,
		Sources:    wssafe.FromHeader | wssafe.FromSubprotocol | wssafe.FromFirstMessage,
	}
	if mutate != nil {
		mutate(a)
	}
	logger, buf := newLogger()
	f.logs = buf
	// The tests assert the log line of every refused token, many from one
	// address within one (fake) second: the log limiter, tested on its
	// own in seclog_test.go, would keep only the first.
	// Keepalive is off: a test that advances the fake clock past a token's
	// expiry would also fire the ping and, with the client not reading,
	// its pong timeout, and which of the two closes first would be chance.
	return &wssafe.Options{Auth: a, Logger: logger, SecurityLogInterval: -1, PingInterval: -1}
}

// server is the package's server on the fixture's clock, which its tokens'
// times are relative to.
func (f *authFixture) server(t *testing.T, h wssafe.Handler, o *wssafe.Options) (*wssafe.Endpoint, string) {
	t.Helper()
	return serverWith(t, h, o, f.hooks())
}

// hooks are the test doubles of an endpoint on the fixture's clock.
func (f *authFixture) hooks() wssafe.Hooks { return wssafe.Hooks{Clock: f.clock} }

func (f *authFixture) remember(tok string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens = append(f.tokens, tok)
	return tok
}

func (f *authFixture) assertNoTokenLogged() {
	if f.logs == nil {
		return
	}
	logs := f.logs.String()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, tok := range f.tokens {
		assert.NotContains(f.t, logs, tok, "a token reached the logs")
		if i := strings.LastIndexByte(tok, '.'); i >= 0 && len(tok)-i > 8 {
			assert.NotContains(f.t, logs, tok[i+1:], "a token signature reached the logs")
		}
	}
}

// claims fills in a subject and an exp an hour ahead unless given.
func (f *authFixture) claims(c claims) claims {
	out := claims{"sub": "alice", "exp": f.clock.Now().Add(time.Hour)}
	for k, v := range c {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

// token mints an HS256 token with the fixture's secret.
func (f *authFixture) token(c claims) string {
	return f.sign(jwa.HS256(), f.secret, f.claims(c), nil)
}

// sign mints a token with jwx: alg and key, the claims as given, extra
// protected headers.
func (f *authFixture) sign(alg jwa.SignatureAlgorithm, key any, c claims, hdr map[string]any) string {
	f.t.Helper()
	tok := jwt.New()
	for k, v := range c {
		require.NoError(f.t, tok.Set(k, v))
	}
	h := jws.NewHeaders()
	for k, v := range hdr {
		require.NoError(f.t, h.Set(k, v))
	}
	b, err := jwt.Sign(tok, jwt.WithKey(alg, key, jws.WithProtectedHeaders(h)))
	require.NoError(f.t, err)
	return f.remember(string(b))
}

// raw assembles a token from a header, a payload and a signature as given.
func (f *authFixture) raw(header, payload string, sig []byte) string {
	enc := base64.RawURLEncoding
	return f.remember(enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload)) + "." + enc.EncodeToString(sig))
}

// hs signs header and payload as given with the fixture's secret, HS256.
func (f *authFixture) hs(header, payload string) string {
	enc := base64.RawURLEncoding
	input := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	mac := hmac.New(sha256.New, f.secret)
	mac.Write([]byte(input))
	return f.remember(input + "." + enc.EncodeToString(mac.Sum(nil)))
}

func (f *authFixture) payload(c claims) string {
	c = f.claims(c)
	for k, v := range c {
		if tm, ok := v.(time.Time); ok {
			c[k] = tm.Unix()
		}
	}
	b, err := json.Marshal(c)
	require.NoError(f.t, err)
	return string(b)
}

func bearer(tok string) *websocket.DialOptions {
	return &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}}}
}

// handshake dials and expects the handshake to be refused.
func handshake(t *testing.T, url string, opts *websocket.DialOptions) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, opts)
	if err == nil {
		c.CloseNow()
		t.Fatal("handshake succeeded; want it refused")
	}
	require.NotNil(t, resp, "no HTTP response: %v", err)
	return resp
}

// roundTrip sends msg and returns the reply.
func roundTrip(t *testing.T, c *websocket.Conn, msg string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(msg)))
	_, b, err := c.Read(ctx)
	require.NoError(t, err)
	return string(b)
}

func sendMsg(t *testing.T, c *websocket.Conn, typ websocket.MessageType, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, c.Write(ctx, typ, []byte(msg)))
}

// whoami answers every message with the session's subject and the subject
// claim as seen through the context accessor.
var whoami = wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
	sub, _ := wssafe.SessionFromContext(ctx).Claims().Subject()
	return s.WriteText(ctx, s.Subject()+"|"+sub+"|"+m.Text())
})

// authenticated is the first-message protocol's greeting, sent from OnOpen.
func authenticated(s *wssafe.Session) error {
	return s.WriteText(s.Context(), "Authenticated!")
}

func TestAuthHeaderToken(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	_, url := f.server(t, whoami, f.options(nil))
	c := dial(t, url, bearer(f.token(nil)))
	assert.Equal(t, "alice|alice|hi", roundTrip(t, c, "hi"))
	assert.Contains(t, f.logs.String(), `"event":"authenticated"`)
	assert.Contains(t, f.logs.String(), `"subject":"alice"`)
}

func TestAuthSubprotocolToken(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	_, url := f.server(t, whoami, f.options(nil))
	tok := f.token(nil)
	k8s := "base64url.bearer.authorization.k8s.io." + base64.RawURLEncoding.EncodeToString([]byte(tok))
	for _, entry := range []string{"bearer." + tok, k8s} {
		// A browser offers the application protocol and the token; the
		// server must select the former and never echo the latter.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{wssafe.DefaultSubprotocol, entry}})
		cancel()
		require.NoError(t, err)
		assert.Equal(t, wssafe.DefaultSubprotocol, resp.Header.Get("Sec-WebSocket-Protocol"))
		assert.Equal(t, wssafe.DefaultSubprotocol, c.Subprotocol())
		assert.Equal(t, "alice|alice|x", roundTrip(t, c, "x"))
		c.Close(websocket.StatusNormalClosure, "")
	}
}

func TestAuthSubprotocolTokenWithAppProtocols(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	o := f.options(nil)
	o.Subprotocols = []string{"chat.v2"}
	_, url := f.server(t, whoami, o)
	c := dial(t, url, &websocket.DialOptions{Subprotocols: []string{"chat.v2", "bearer." + f.token(nil)}})
	assert.Equal(t, "chat.v2", c.Subprotocol())
	assert.Equal(t, "alice|alice|x", roundTrip(t, c, "x"))
}

func TestAuthCookieToken(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	o := f.options(func(a *wssafe.AuthOptions) {
		a.Sources = wssafe.FromCookie
		a.CookieName = "session"
	})
	_, url := f.server(t, whoami, o)
	tok := f.token(nil)
	cookie := http.Header{"Cookie": {"session=" + tok}}
	c := dial(t, url, &websocket.DialOptions{HTTPHeader: cookie})
	assert.Equal(t, "alice|alice|x", roundTrip(t, c, "x"))

	// The origin check is what keeps another site from riding the cookie.
	cross := http.Header{"Cookie": {"session=" + tok}, "Origin": {"https://evil.example"}}
	resp := handshake(t, url, &websocket.DialOptions{HTTPHeader: cross})
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)

	// The header is not a source on this endpoint.
	resp = handshake(t, url, bearer(tok))
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	// Two cookies of the name (one planted by a sibling domain) are refused.
	two := http.Header{"Cookie": {"session=" + tok + "; session=" + f.token(claims{"sub": "mallory"})}}
	resp = handshake(t, url, &websocket.DialOptions{HTTPHeader: two})
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

func TestAuthQueryToken(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	tok := f.token(nil)

	// Refused unless enabled, out loud and even beside a good header token
	// or with first-message auth on: the client is leaking its token into
	// access logs and must learn so at once.
	_, url := f.server(t, whoami, f.options(func(a *wssafe.AuthOptions) {
		a.Sources = wssafe.FromHeader | wssafe.FromFirstMessage
	}))
	for _, q := range []string{"?access_token=", "?token=", "?jwt=", "?x=1&id_token="} {
		resp := handshake(t, url+q+tok, nil)
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, q)
		assert.Equal(t, `Bearer error="invalid_token"`, resp.Header.Get("WWW-Authenticate"), q)
	}
	resp := handshake(t, url+"?access_token="+tok, bearer(tok))
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	waitForLog(t, f.logs, `"reason":"query_token"`)
	assert.NotContains(t, f.logs.String(), tok)
	c0 := dial(t, url+"?room=go", bearer(tok)) // other parameters are fine
	c0.Close(websocket.StatusNormalClosure, "")

	_, url = f.server(t, whoami, f.options(func(a *wssafe.AuthOptions) {
		a.Sources = wssafe.FromHeader
		a.InsecureQueryParam = "access_token"
	}))
	assert.Contains(t, f.logs.String(), `"event":"insecure_config"`)
	c := dial(t, url+"?access_token="+tok, nil)
	assert.Equal(t, "alice|alice|x", roundTrip(t, c, "x"))
	c.Close(websocket.StatusNormalClosure, "")
	resp = handshake(t, url+"?access_token="+tok+"x", nil)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

func TestAuthFirstMessage(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	var calls atomic.Int32
	h := wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		calls.Add(1)
		return echo(ctx, s, m)
	})
	o := f.options(func(a *wssafe.AuthOptions) { a.SubjectClaims = []string{"user_id", "sub"} })
	o.OnOpen = authenticated
	_, url := f.server(t, h, o)
	exp := f.clock.Now().Add(time.Hour).Unix()
	for _, tok := range []string{
		f.token(claims{"user_id": 42, "sub": nil}),
		// An ID above 2^53 keeps its exact digits (no float64 rounding).
		f.hs(`{"alg":"HS256"}`, fmt.Sprintf(`{"user_id":12345678901234567890123,"exp":%d}`, exp)),
		f.token(claims{"user_id": "u-7", "sub": nil}),
		f.token(nil), // falls back to sub
	} {
		conn := dial(t, url, nil)
		sendMsg(t, conn, websocket.MessageText, " "+tok+"\n")
		_, got, err := conn.Read(context.Background())
		require.NoError(t, err)
		assert.Equal(t, "Authenticated!", string(got))
		assert.Equal(t, "Server received: hello", roundTrip(t, conn, "hello"))
		conn.Close(websocket.StatusNormalClosure, "")
	}
	assert.EqualValues(t, 4, calls.Load(), "the token message must not reach the handler")
	logs := f.logs.String()
	for _, sub := range []string{`"subject":"42"`, `"subject":"12345678901234567890123"`, `"subject":"u-7"`, `"subject":"alice"`} {
		assert.Contains(t, logs, sub)
	}
}

// rejection is a token the endpoint must refuse, and the reason it logs.
type rejection struct {
	name   string
	token  func(f *authFixture) string
	reason string
}

func rejections() []rejection {
	other := make([]byte, 32)
	rand.Read(other)
	return []rejection{
		{"garbage", func(f *authFixture) string { return f.remember("not-a-token") }, "malformed"},
		{"four segments", func(f *authFixture) string { return f.remember(f.token(nil) + ".x") }, "malformed"},
		{"non-canonical signature encoding", func(f *authFixture) string {
			// The same signature bytes, spelled differently: the last
			// character's two unused bits set (found by FuzzVerify).
			tok := f.token(nil)
			const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
			last := strings.IndexByte(alphabet, tok[len(tok)-1])
			return f.remember(tok[:len(tok)-1] + string(alphabet[last^1]))
		}, "malformed"},
		{"wrong key", func(f *authFixture) string { return f.sign(jwa.HS256(), other, f.claims(nil), nil) }, "signature"},
		{"tampered payload", func(f *authFixture) string {
			parts := strings.Split(f.token(nil), ".")
			parts[1] = base64.RawURLEncoding.EncodeToString([]byte(f.payload(claims{"sub": "admin"})))
			return f.remember(strings.Join(parts, "."))
		}, "signature"},
		{"alg none", func(f *authFixture) string { return f.raw(`{"alg":"none","typ":"JWT"}`, f.payload(nil), nil) }, "alg_none"},
		{"empty signature", func(f *authFixture) string { return f.raw(`{"alg":"HS256","typ":"JWT"}`, f.payload(nil), nil) }, "signature"},
		{"alg none with signature", func(f *authFixture) string {
			return f.raw(`{"alg":"none","typ":"JWT"}`, f.payload(nil), []byte("x"))
		}, "alg_none"},
		{"alg None", func(f *authFixture) string { return f.raw(`{"alg":"None"}`, f.payload(nil), []byte("x")) }, "alg_none"},
		{"alg nOnE", func(f *authFixture) string { return f.raw(`{"alg":"nOnE"}`, f.payload(nil), []byte("x")) }, "alg_none"},
		{"alg not bound to a key", func(f *authFixture) string {
			return f.sign(jwa.HS512(), append(f.secret, f.secret...), f.claims(nil), nil)
		}, "alg_not_allowed"},
		{"duplicate alg", func(f *authFixture) string {
			return f.raw(`{"alg":"HS256","alg":"none"}`, f.payload(nil), []byte("x"))
		}, "malformed"},
		{"duplicate claim", func(f *authFixture) string {
			return f.hs(`{"alg":"HS256"}`, fmt.Sprintf(`{"sub":"alice","sub":"admin","exp":%d}`, f.clock.Now().Add(time.Hour).Unix()))
		}, "malformed"},
		{"jku header", func(f *authFixture) string {
			return f.sign(jwa.HS256(), f.secret, f.claims(nil), map[string]any{"jku": "https://evil.example/jwks.json"})
		}, "key_in_header"},
		{"x5u header", func(f *authFixture) string {
			return f.sign(jwa.HS256(), f.secret, f.claims(nil), map[string]any{"x5u": "https://evil.example/cert.pem"})
		}, "key_in_header"},
		{"crit header", func(f *authFixture) string {
			return f.sign(jwa.HS256(), f.secret, f.claims(nil), map[string]any{"crit": []string{"exp"}})
		}, "crit"},
		{"expired", func(f *authFixture) string { return f.token(claims{"exp": f.clock.Now().Add(-time.Second)}) }, "expired"},
		{"not yet valid", func(f *authFixture) string { return f.token(claims{"nbf": f.clock.Now().Add(time.Minute)}) }, "not_yet_valid"},
		{"issued in the future", func(f *authFixture) string { return f.token(claims{"iat": f.clock.Now().Add(time.Minute)}) }, "issued_in_future"},
		{"no exp", func(f *authFixture) string { return f.token(claims{"exp": nil}) }, "missing_claim"},
		{"no subject", func(f *authFixture) string { return f.token(claims{"sub": nil}) }, "missing_claim"},
		{"empty subject", func(f *authFixture) string { return f.token(claims{"sub": ""}) }, "invalid_claim"},
		{"oversized", func(f *authFixture) string {
			return f.token(claims{"pad": strings.Repeat("a", wssafe.DefaultMaxTokenSize)})
		}, "too_large"},
	}
}

// claimDescriptions are the error_descriptions of the rejections that
// name a claim.
var claimDescriptions = map[string]string{
	"no exp":        "missing exp claim",
	"no subject":    "missing sub claim",
	"empty subject": "invalid sub claim",
}

func TestAuthHandshakeRejections(t *testing.T) {
	t.Parallel()
	for _, tc := range rejections() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newAuthFixture(t)
			var calls atomic.Int32
			h := wssafe.HandlerFunc(func(context.Context, *wssafe.Session, wssafe.Message) error { calls.Add(1); return nil })
			_, url := f.server(t, h, f.options(nil))
			resp := handshake(t, url, bearer(tc.token(f)))
			assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
			want := `Bearer error="invalid_token"`
			if d := claimDescriptions[tc.name]; d != "" {
				want += `, error_description="` + d + `"`
			}
			assert.Equal(t, want, resp.Header.Get("WWW-Authenticate"))
			logs := f.logs.String()
			assert.Contains(t, logs, `"event":"auth_failed"`)
			assert.Contains(t, logs, `"reason":"`+tc.reason+`"`)
			assert.Contains(t, logs, `"level":"WARN"`)
			assert.Zero(t, calls.Load())
		})
	}
}

func TestAuthFirstMessageRejections(t *testing.T) {
	t.Parallel()
	for _, tc := range rejections() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newAuthFixture(t)
			var calls atomic.Int32
			h := wssafe.HandlerFunc(func(context.Context, *wssafe.Session, wssafe.Message) error { calls.Add(1); return nil })
			opened := false
			o := f.options(func(a *wssafe.AuthOptions) {
				a.Sources = wssafe.FromFirstMessage
				a.AuthReadLimit = 64 << 10 // so that MaxTokenSize, not the read limit, refuses the oversized token
				a.ExpiredText = "Token Expired"
			})
			o.OnOpen = func(*wssafe.Session) error { opened = true; return nil }
			_, url := f.server(t, h, o)
			c := dial(t, url, nil)
			sendMsg(t, c, websocket.MessageText, tc.token(f))
			if tc.reason == "expired" {
				_, got, err := c.Read(context.Background())
				require.NoError(t, err)
				assert.Equal(t, "Token Expired", string(got))
			}
			ce := readClose(t, c)
			assert.Equal(t, wssafe.StatusUnauthorized, ce.Code)
			want := "invalid token"
			if tc.reason == "expired" {
				want = "token expired"
			}
			assert.Equal(t, want, ce.Reason)
			assert.Contains(t, f.logs.String(), `"reason":"`+tc.reason+`"`)
			assert.Zero(t, calls.Load())
			assert.False(t, opened)
		})
	}
}

func TestAuthHandshakeMissingToken(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	_, url := f.server(t, whoami, f.options(func(a *wssafe.AuthOptions) { a.Sources = 0 }))
	resp := handshake(t, url, nil)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, "Bearer", resp.Header.Get("WWW-Authenticate"))
	assert.Contains(t, f.logs.String(), `"reason":"missing"`)

	for name, h := range map[string]http.Header{
		"two headers":     {"Authorization": {"Bearer " + f.token(nil), "Bearer " + f.token(nil)}},
		"empty bearer":    {"Authorization": {"Bearer "}},
		"bad alphabet":    {"Authorization": {"Bearer a.b.c%"}},
		"two subprotocol": {"Sec-WebSocket-Protocol": {"wssafe, bearer.a.b.c, bearer.d.e.f"}},
		"bad k8s entry":   {"Sec-WebSocket-Protocol": {"wssafe, base64url.bearer.authorization.k8s.io.!!"}},
	} {
		resp := handshake(t, url, &websocket.DialOptions{HTTPHeader: h})
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, name)
		assert.Equal(t, `Bearer error="invalid_token"`, resp.Header.Get("WWW-Authenticate"), name)
	}
	// Another scheme is not ours: no token at all.
	resp = handshake(t, url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Basic dXNlcjpwdw=="}}})
	assert.Equal(t, "Bearer", resp.Header.Get("WWW-Authenticate"))
}

func TestAuthFirstMessageLimits(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	var calls atomic.Int32
	h := wssafe.HandlerFunc(func(context.Context, *wssafe.Session, wssafe.Message) error { calls.Add(1); return nil })
	o := f.options(func(a *wssafe.AuthOptions) {
		a.Sources = wssafe.FromFirstMessage
		a.AuthTimeout = 100 * time.Millisecond
	})
	_, url := f.server(t, h, o)

	t.Run("timeout", func(t *testing.T) {
		c := dial(t, url, nil)
		ce := readClose(t, c)
		assert.Equal(t, wssafe.StatusTimeout, ce.Code)
		assert.Equal(t, "authentication timeout", ce.Reason)
	})
	t.Run("too big", func(t *testing.T) {
		c := dial(t, url, nil)
		sendMsg(t, c, websocket.MessageText, strings.Repeat("a", wssafe.DefaultAuthReadLimit+1))
		ce := readClose(t, c)
		assert.Equal(t, wssafe.StatusMessageTooBig, ce.Code)
	})
	t.Run("binary", func(t *testing.T) {
		c := dial(t, url, nil)
		sendMsg(t, c, websocket.MessageBinary, f.token(nil))
		ce := readClose(t, c)
		assert.Equal(t, wssafe.StatusUnauthorized, ce.Code)
		assert.Equal(t, "invalid token", ce.Reason)
	})
	waitForLog(t, f.logs, `"limit":8192`)
	assert.Contains(t, f.logs.String(), `"event":"auth_timeout"`)
	assert.Zero(t, calls.Load())
}

func TestAuthFirstMessageReadLimitRestored(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	o := f.options(func(a *wssafe.AuthOptions) { a.Sources = wssafe.FromFirstMessage })
	_, url := f.server(t, echo, o)
	c := dial(t, url, nil)
	sendMsg(t, c, websocket.MessageText, f.token(nil))
	big := strings.Repeat("b", 20<<10) // over the auth limit, under the session's 32 KiB
	assert.Equal(t, "Server received: "+big, roundTrip(t, c, big))
}

func TestAuthExpiryClosesOpenSession(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	o := f.options(func(a *wssafe.AuthOptions) { a.AcceptableSkew = 5 * time.Second })
	o.PingInterval, o.WriteTimeout = -1, -1 // so that the expiry timer is the clock's only one
	ep, url := f.server(t, whoami, o)
	_ = ep
	exp := f.clock.Now().Add(time.Minute)
	c := dial(t, url, bearer(f.token(claims{"exp": exp})))
	assert.Equal(t, "alice|alice|a", roundTrip(t, c, "a")) // the timer is armed before the first read
	assert.Equal(t, 1, f.clock.Timers())

	f.clock.Advance(time.Minute + 4*time.Second) // past exp, within the skew
	assert.Equal(t, "alice|alice|b", roundTrip(t, c, "b"))

	f.clock.Advance(time.Second)
	ce := readClose(t, c)
	assert.Equal(t, wssafe.StatusUnauthorized, ce.Code)
	assert.Equal(t, "token expired", ce.Reason)
	assert.Contains(t, f.logs.String(), `"event":"token_expired"`)
	require.Eventually(t, func() bool { return f.clock.Timers() == 0 }, 5*time.Second, 10*time.Millisecond)
}

func TestAuthExpiryTimerStoppedOnClose(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	o := f.options(nil)
	o.PingInterval, o.WriteTimeout = -1, -1 // so that the expiry timer is the clock's only one
	_, url := f.server(t, whoami, o)
	c := dial(t, url, bearer(f.token(nil)))
	roundTrip(t, c, "a")
	assert.Equal(t, 1, f.clock.Timers())
	require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))
	require.Eventually(t, func() bool { return f.clock.Timers() == 0 }, 5*time.Second, 10*time.Millisecond)
}

func TestAuthSessionClaims(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	exp := f.clock.Now().Add(time.Hour)
	h := wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		var role string
		if err := s.Claims().Get("role", &role); err != nil {
			return err
		}
		exp, _ := s.Claims().Expiration()
		return s.WriteText(ctx, fmt.Sprintf("%s %d", role, exp.Unix()))
	})
	_, url := f.server(t, h, f.options(nil))
	c := dial(t, url, bearer(f.token(claims{"role": "admin", "exp": exp})))
	assert.Equal(t, fmt.Sprintf("admin %d", exp.Unix()), roundTrip(t, c, "x"))
}

func TestAuthRefresh(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	var calls atomic.Int32
	h := wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		calls.Add(1)
		return whoami(ctx, s, m)
	})
	_, url := f.server(t, h, f.options(func(a *wssafe.AuthOptions) { a.AllowRefresh = true }))
	refresh := func(tok string) string { return `{"type":"refresh","token":"` + tok + `"}` }

	t.Run("same subject moves the expiry", func(t *testing.T) {
		c := dial(t, url, bearer(f.token(claims{"exp": f.clock.Now().Add(time.Minute)})))
		newExp := f.clock.Now().Add(time.Hour)
		got := roundTrip(t, c, refresh(f.token(claims{"exp": newExp, "role": "new"})))
		assert.JSONEq(t, fmt.Sprintf(`{"type":"refreshed","exp":%d}`, newExp.Unix()), got)
		f.clock.Advance(2 * time.Minute) // the old exp has passed
		assert.Equal(t, "alice|alice|still here", roundTrip(t, c, "still here"))
		f.clock.Advance(time.Hour)
		ce := readClose(t, c)
		assert.Equal(t, "token expired", ce.Reason)
	})
	t.Run("different subject", func(t *testing.T) {
		c := dial(t, url, bearer(f.token(nil)))
		sendMsg(t, c, websocket.MessageText, refresh(f.token(claims{"sub": "mallory"})))
		ce := readClose(t, c)
		assert.Equal(t, wssafe.StatusForbidden, ce.Code)
		assert.Contains(t, f.logs.String(), `"reason":"subject_changed"`)
	})
	t.Run("invalid token", func(t *testing.T) {
		c := dial(t, url, bearer(f.token(nil)))
		sendMsg(t, c, websocket.MessageText, refresh(f.token(claims{"exp": f.clock.Now().Add(-time.Second)})))
		ce := readClose(t, c)
		assert.Equal(t, wssafe.StatusUnauthorized, ce.Code)
		assert.Equal(t, "token expired", ce.Reason)
		c = dial(t, url, bearer(f.token(nil)))
		sendMsg(t, c, websocket.MessageText, `{"type":"refresh"}`)
		assert.Equal(t, "invalid token", readClose(t, c).Reason)
	})
	assert.Equal(t, int32(1), calls.Load(), "refresh messages must not reach the handler")
}

func TestAuthRefreshDisabledPassesThrough(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	_, url := f.server(t, whoami, f.options(nil))
	c := dial(t, url, bearer(f.token(nil)))
	msg := `{"type":"refresh","token":"` + f.token(claims{"sub": "mallory"}) + `"}`
	assert.Equal(t, "alice|alice|"+msg, roundTrip(t, c, msg))
}

func TestCloseSubject(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	ep, url := f.server(t, whoami, f.options(nil))
	alice1 := dial(t, url, bearer(f.token(nil)))
	alice2 := dial(t, url, nil)
	sendMsg(t, alice2, websocket.MessageText, f.token(nil)) // first-message auth
	bob := dial(t, url, bearer(f.token(claims{"sub": "bob"})))
	for _, c := range []*websocket.Conn{alice1, alice2, bob} {
		roundTrip(t, c, "ping") // all three are authenticated and tracked
	}
	a1, a2 := closeCode(alice1), closeCode(alice2)
	require.NoError(t, ep.Hub().CloseSubject("alice", nil))
	assert.Equal(t, wssafe.StatusForbidden, <-a1, "nil is the revocation meaning: 3003")
	assert.Equal(t, wssafe.StatusForbidden, <-a2)
	assert.Equal(t, "bob|bob|still here", roundTrip(t, bob, "still here"))
	require.NoError(t, ep.Hub().CloseSubject("alice", nil))
	require.NoError(t, ep.Hub().CloseSubject("", nil))
	b := closeCode(bob)
	require.NoError(t, ep.Hub().CloseSubject("bob", wssafe.ErrInvalidToken))
	assert.Equal(t, wssafe.StatusUnauthorized, <-b)
	// One line per revocation that closed something, with the code sent.
	assert.Equal(t, []string{"alice 2 3003", "bob 1 3000"}, subjectClosedLines(t, f.logs))
}

// subjectClosedLines returns "subject sessions code" for each
// subject_closed log line.
func subjectClosedLines(t *testing.T, logs *logBuffer) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec struct {
			Event    string  `json:"event"`
			Subject  string  `json:"subject"`
			Sessions int     `json:"sessions"`
			Code     float64 `json:"code"`
		}
		require.NoError(t, json.Unmarshal([]byte(line), &rec))
		if rec.Event == wssafe.EventSubjectClosed {
			out = append(out, fmt.Sprintf("%s %d %d", rec.Subject, rec.Sessions, int(rec.Code)))
		}
	}
	return out
}

// closeCode reads c in the background and delivers the close code it ends
// with (-1 if it ends without a close frame).
func closeCode(c *websocket.Conn) <-chan websocket.StatusCode {
	ch := make(chan websocket.StatusCode, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for {
			if _, _, err := c.Read(ctx); err != nil {
				ch <- websocket.CloseStatus(err)
				return
			}
		}
	}()
	return ch
}

func TestAuthorizeHook(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	deny := errors.New("not an admin")
	o := f.options(func(a *wssafe.AuthOptions) {
		a.Authorize = func(ctx context.Context, subject string, c jwt.Token) error {
			var role string
			_ = c.Get("role", &role)
			if role != "admin" {
				return deny
			}
			return nil
		}
	})
	_, url := f.server(t, whoami, o)

	c := dial(t, url, bearer(f.token(claims{"role": "admin"})))
	assert.Equal(t, "alice|alice|x", roundTrip(t, c, "x"))

	resp := handshake(t, url, bearer(f.token(claims{"role": "guest"})))
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Empty(t, resp.Header.Get("WWW-Authenticate"))

	c = dial(t, url, nil)
	sendMsg(t, c, websocket.MessageText, f.token(claims{"role": "guest"}))
	assert.Equal(t, wssafe.StatusForbidden, readClose(t, c).Code)
	logs := f.logs.String()
	assert.Contains(t, logs, `"event":"auth_forbidden"`)
	assert.Contains(t, logs, "not an admin")
}

func TestAuthorizePanicFailsClosed(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	o := f.options(func(a *wssafe.AuthOptions) {
		a.Authorize = func(context.Context, string, jwt.Token) error { panic("bug") }
	})
	_, url := f.server(t, whoami, o)
	resp := handshake(t, url, bearer(f.token(nil)))
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	c := dial(t, url, nil)
	sendMsg(t, c, websocket.MessageText, f.token(nil))
	assert.Equal(t, wssafe.StatusInternalError, readClose(t, c).Code)
	assert.Contains(t, f.logs.String(), `"event":"panic"`)
}

func TestAuthClaimRules(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	o := f.options(func(a *wssafe.AuthOptions) {
		a.Issuer = "https://issuer.example"
		a.Audience = "wssafe-test"
		a.RequiredClaims = []string{"jti"}
		a.Type = "at+jwt"
		a.ParseOptions = []jwt.ParseOption{
			jwt.WithClaimValue("tenant", "acme"),
			jwt.WithVerify(false), // overridden: verification stays on
			jwt.WithValidate(false),
		}
	})
	_, url := f.server(t, whoami, o)
	good := claims{"iss": "https://issuer.example", "aud": []string{"other", "wssafe-test"}, "jti": "1", "tenant": "acme"}
	with := func(k string, v any) claims {
		c := claims{}
		for kk, vv := range good {
			c[kk] = vv
		}
		c[k] = v
		return c
	}
	typ := map[string]any{"typ": "application/at+JWT"}
	c := dial(t, url, bearer(f.sign(jwa.HS256(), f.secret, f.claims(good), typ)))
	assert.Equal(t, "alice|alice|x", roundTrip(t, c, "x"))

	for _, tc := range []struct {
		name   string
		tok    string
		reason string
	}{
		{"wrong issuer", f.sign(jwa.HS256(), f.secret, f.claims(with("iss", "https://evil.example")), typ), "issuer"},
		{"wrong audience", f.sign(jwa.HS256(), f.secret, f.claims(with("aud", "other")), typ), "audience"},
		{"missing jti", f.sign(jwa.HS256(), f.secret, f.claims(with("jti", nil)), typ), "missing_claim"},
		{"custom rule", f.sign(jwa.HS256(), f.secret, f.claims(with("tenant", "evil")), typ), "claims"},
		{"typ missing", f.sign(jwa.HS256(), f.secret, f.claims(good), map[string]any{"typ": "JWT"}), "typ"},
		{"expired despite WithValidate(false)", f.sign(jwa.HS256(), f.secret, f.claims(with("exp", f.clock.Now().Add(-time.Hour))), typ), "expired"},
		{"forged despite WithVerify(false)", f.raw(`{"alg":"HS256","typ":"at+jwt"}`, f.payload(good), []byte("forged")), "signature"},
	} {
		f.refusedAtHandshake(url, tc.name, tc.tok, tc.reason)
	}
}

func TestAuthMissingExpOptOut(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	o := f.options(func(a *wssafe.AuthOptions) { a.InsecureAllowMissingExp = true })
	o.PingInterval, o.WriteTimeout = -1, -1 // so that an expiry timer would be the clock's only one
	_, url := f.server(t, whoami, o)
	assert.Contains(t, f.logs.String(), "tokens without exp accepted")
	c := dial(t, url, bearer(f.token(claims{"exp": nil})))
	assert.Equal(t, "alice|alice|x", roundTrip(t, c, "x"))
	assert.Equal(t, 0, f.clock.Timers(), "no expiry, no timer")
	// An exp that is present is still enforced.
	resp := handshake(t, url, bearer(f.token(claims{"exp": f.clock.Now().Add(-time.Second)})))
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

func TestAuthWeakSecret(t *testing.T) {
	t.Parallel()
	weak := []byte("secret_key") // a published example's secret, deliberately weak
	_, err := wssafe.New(echo, &wssafe.Options{Logger: quiet(), Auth: &wssafe.AuthOptions{HMACSecret: weak}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "10 bytes")
	assert.Contains(t, err.Error(), "at least 32")
	assert.Contains(t, err.Error(), "InsecureAllowWeakSecret")

	_, err = wssafe.New(echo, &wssafe.Options{Logger: quiet(), Auth: &wssafe.AuthOptions{HMACSecret: make([]byte, 40), HMACAlgorithm: jwa.HS512()}})
	require.ErrorContains(t, err, "at least 64")

	f := newAuthFixture(t)
	f.secret = weak
	_, url := f.server(t, whoami, f.options(func(a *wssafe.AuthOptions) { a.InsecureAllowWeakSecret = true }))
	logs := f.logs.String()
	assert.Equal(t, 1, strings.Count(logs, "weak HMAC secret accepted"))
	c := dial(t, url, bearer(f.token(nil)))
	assert.Equal(t, "alice|alice|x", roundTrip(t, c, "x"))
	assert.NotContains(t, f.logs.String(), string(weak))
}

func TestAuthConfigErrors(t *testing.T) {
	t.Parallel()
	rsaPub := &testRSAKey().PublicKey
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	secret := make([]byte, 32)
	for name, tc := range map[string]struct {
		opts *wssafe.Options
		want string
	}{
		"no key":                {&wssafe.Options{Logger: quiet(), Auth: &wssafe.AuthOptions{}}, "needs a verification key"},
		"cookie without name":   {&wssafe.Options{Logger: quiet(), Auth: &wssafe.AuthOptions{HMACSecret: secret, Sources: wssafe.FromCookie}}, "CookieName"},
		"name without cookie":   {&wssafe.Options{Logger: quiet(), Auth: &wssafe.AuthOptions{HMACSecret: secret, CookieName: "s"}}, "CookieName"},
		"cookie without origin": {&wssafe.Options{Logger: quiet(), InsecureSkipOriginCheck: true, Auth: &wssafe.AuthOptions{HMACSecret: secret, Sources: wssafe.FromCookie, CookieName: "s"}}, "hijacking"},
		"token-like protocol":   {&wssafe.Options{Logger: quiet(), Subprotocols: []string{"bearer.x"}, Auth: &wssafe.AuthOptions{HMACSecret: secret}}, "looks like a token"},
		"rsa key as hmac alg":   {&wssafe.Options{Logger: quiet(), Auth: &wssafe.AuthOptions{PublicKeys: []wssafe.PublicKey{{Key: rsaPub, Algorithm: jwa.HS256()}}}}, "does not fit"},
		"small rsa key":         {&wssafe.Options{Logger: quiet(), Auth: &wssafe.AuthOptions{PublicKeys: []wssafe.PublicKey{{Key: &small.PublicKey}}}}, "2048"},
		"private key pem": {&wssafe.Options{Logger: quiet(), Auth: &wssafe.AuthOptions{PublicKeys: []wssafe.PublicKey{{
			PEM: pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(small)})}}}}, "public half"},
		"private key value": {&wssafe.Options{Logger: quiet(), Auth: &wssafe.AuthOptions{PublicKeys: []wssafe.PublicKey{{Key: small}}}}, "unsupported key type"},
		"hmac alg not hmac": {&wssafe.Options{Logger: quiet(), Auth: &wssafe.AuthOptions{HMACSecret: secret, HMACAlgorithm: jwa.RS256()}}, "HS256, HS384 or HS512"},
		"negative timeout":  {&wssafe.Options{Logger: quiet(), Auth: &wssafe.AuthOptions{HMACSecret: secret, AuthTimeout: -1}}, "negative"},
		"jwks both":         {&wssafe.Options{Logger: quiet(), Auth: &wssafe.AuthOptions{JWKS: &wssafe.JWKSOptions{File: "x", URL: "https://x"}}}, "exactly one"},
		"jwks http":         {&wssafe.Options{Logger: quiet(), Auth: &wssafe.AuthOptions{JWKS: &wssafe.JWKSOptions{URL: "http://idp.example/jwks"}}}, "https://"},
		"jwks missing file": {&wssafe.Options{Logger: quiet(), Auth: &wssafe.AuthOptions{JWKS: &wssafe.JWKSOptions{File: "testdata/none.json"}}}, "testdata/none.json"},
	} {
		_, err := wssafe.New(echo, tc.opts)
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), tc.want, name)
		assert.NotContains(t, err.Error(), "\n", name)
	}
}

func TestAuthPublicKeys(t *testing.T) {
	t.Parallel()
	rsaKey := testRSAKey()
	ecKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	edPub, edKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	require.NoError(t, err)
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})

	f := newAuthFixture(t)
	o := f.options(func(a *wssafe.AuthOptions) {
		a.HMACSecret = nil
		a.PublicKeys = []wssafe.PublicKey{
			{PEM: rsaPEM, KeyID: "rsa-1"},
			{Key: &ecKey.PublicKey},
			{Key: edPub},
		}
	})
	_, url := f.server(t, whoami, o)
	for _, tok := range []string{
		f.sign(jwa.RS256(), rsaKey, f.claims(nil), map[string]any{"kid": "rsa-1"}),
		f.sign(jwa.RS256(), rsaKey, f.claims(nil), nil), // no kid: the key still applies
		f.sign(jwa.ES384(), ecKey, f.claims(nil), nil),
		f.sign(jwa.EdDSA(), edKey, f.claims(nil), nil),
	} {
		c := dial(t, url, bearer(tok))
		assert.Equal(t, "alice|alice|x", roundTrip(t, c, "x"))
		c.Close(websocket.StatusNormalClosure, "")
	}

	mac := hmac.New(sha256.New, rsaPEM) // the classic confusion: the public key as an HMAC secret
	hdr, payload := `{"alg":"HS256","typ":"JWT"}`, f.payload(nil)
	enc := base64.RawURLEncoding
	mac.Write([]byte(enc.EncodeToString([]byte(hdr)) + "." + enc.EncodeToString([]byte(payload))))
	otherEC, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	attacker, err := jwk.Import(&otherEC.PublicKey)
	require.NoError(t, err)

	for _, tc := range []struct {
		name, tok, reason string
	}{
		{"hs256 with the rsa public key", f.raw(hdr, payload, mac.Sum(nil)), "alg_not_allowed"},
		{"unknown kid", f.sign(jwa.RS256(), rsaKey, f.claims(nil), map[string]any{"kid": "rsa-2"}), "unknown_key"},
		{"forged rs256", f.raw(`{"alg":"RS256"}`, payload, []byte("not a signature")), "signature"},
		{"embedded jwk", f.sign(jwa.ES384(), otherEC, f.claims(nil), map[string]any{"jwk": attacker}), "key_in_header"},
		{"other ec key", f.sign(jwa.ES384(), otherEC, f.claims(nil), nil), "signature"},
	} {
		f.refusedAtHandshake(url, tc.name, tc.tok, tc.reason)
	}
}

func TestAuthErrorsMatchSentinels(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	var got atomic.Value
	o := f.options(func(a *wssafe.AuthOptions) { a.Sources = wssafe.FromFirstMessage })
	o.OnClose = func(_ *wssafe.Session, err error) { got.Store(err) }
	_, url := f.server(t, echo, o)
	c := dial(t, url, nil)
	sendMsg(t, c, websocket.MessageText, f.token(claims{"exp": f.clock.Now().Add(-time.Minute)}))
	readClose(t, c)
	require.Eventually(t, func() bool { return got.Load() != nil }, 5*time.Second, 10*time.Millisecond)
	err := got.Load().(error)
	assert.ErrorIs(t, err, wssafe.ErrTokenExpired)
	assert.ErrorIs(t, err, jwt.TokenExpiredError())
	assert.NotContains(t, err.Error(), "alice")
}

// The per-subject connection cap with real tokens: a handshake token is
// counted before the upgrade (429), a first-message token after it (1008),
// and a user's sessions share one message budget.
func TestAuthSubjectCapAndBudget(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	o := f.options(nil)
	o.MaxConnsPerSubject = 2
	o.SubjectMessageRate = wssafe.Rate{PerSecond: 0.001, Burst: 3}
	o.OnOpen = authenticated
	ep, url := f.server(t, echo, o)

	a1 := dial(t, url, bearer(f.token(nil)))
	assert.Equal(t, "Authenticated!", readText(t, a1))
	a2 := dial(t, url, nil)
	sendMsg(t, a2, websocket.MessageText, f.token(nil))
	assert.Equal(t, "Authenticated!", readText(t, a2))

	resp := handshake(t, url, bearer(f.token(nil)))
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.NotEmpty(t, resp.Header.Get("Retry-After"))

	a3 := dial(t, url, nil)
	sendMsg(t, a3, websocket.MessageText, f.token(nil))
	ce := readClose(t, a3)
	assert.Equal(t, websocket.StatusPolicyViolation, ce.Code)
	assert.Equal(t, "too many connections", ce.Reason)

	bob := dial(t, url, bearer(f.token(claims{"sub": "bob"})))
	assert.Equal(t, "Authenticated!", readText(t, bob))
	assert.Len(t, ep.Hub().BySubject("alice"), 2)

	// Alice's two sessions share three messages; Bob has his own budget.
	assert.Equal(t, "Server received: 1", roundTrip(t, a1, "1"))
	assert.Equal(t, "Server received: 2", roundTrip(t, a2, "2"))
	assert.Equal(t, "Server received: 3", roundTrip(t, a1, "3"))
	assert.Equal(t, "Server received: b", roundTrip(t, bob, "b"))
	sendMsg(t, a2, websocket.MessageText, "4")
	ce = readClose(t, a2)
	assert.Equal(t, websocket.StatusPolicyViolation, ce.Code)
	assert.Equal(t, "rate limit exceeded", ce.Reason)
}

// refusedAtHandshake asserts that tok, sent in the Authorization header, is
// refused with 401 and logged with reason.
func (f *authFixture) refusedAtHandshake(url, name, tok, reason string) {
	f.t.Helper()
	resp := handshake(f.t, url, bearer(tok))
	assert.Equal(f.t, http.StatusUnauthorized, resp.StatusCode, name)
	assert.Contains(f.t, f.logs.String(), `"reason":"`+reason+`"`, name)
}

// randomSecret returns 32 random bytes, as `openssl rand 32` would.
func randomSecret(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, 32)
	rand.Read(b)
	return b
}

func TestLowEntropyHMACSecretRefused(t *testing.T) {
	t.Parallel()
	ramp, evens, twoSymbols := make([]byte, 32), make([]byte, 32), make([]byte, 32)
	for i := range ramp {
		ramp[i] = byte(i)
		evens[i] = 'a' + 2*byte(i)
		twoSymbols[i] = "ab"[i*i%7%2]
	}
	for name, secret := range map[string][]byte{
		"32 zero bytes":       make([]byte, 32),
		"one byte repeated":   []byte(strings.Repeat("k", 32)),
		"two symbols":         twoSymbols,
		"a word repeated":     []byte(strings.Repeat("secret_key", 4)),
		"hex block repeated":  []byte("0123456789abcdef0123456789abcdef"),
		"ramp 0x00, 0x01 ...": ramp,
		"alphabet":            []byte("abcdefghijklmnopqrstuvwxyzABCDEF"),
		"every other letter":  evens,
		"ramp with a typo":    append(append([]byte(nil), ramp[:20]...), []byte("x0123456789a")...),
		"long zero HS512":     make([]byte, 64),
	} {
		var alg jwa.SignatureAlgorithm
		if len(secret) == 64 {
			alg = jwa.HS512()
		}
		_, err := wssafe.New(echo, &wssafe.Options{Logger: quiet(), Auth: &wssafe.AuthOptions{HMACSecret: secret, HMACAlgorithm: alg}})
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), "HMACSecret is not random", name)
		assert.Contains(t, err.Error(), "openssl rand -base64", name)
		assert.Contains(t, err.Error(), "InsecureAllowWeakSecret", name)
		assert.NotContains(t, err.Error(), string(secret), name)
	}

	// The existing opt-in accepts one, with a warning that names no secret.
	logger, rec := newRecorder()
	secret := []byte(strings.Repeat("secret_key", 4))
	_, err := wssafe.New(echo, &wssafe.Options{Logger: logger, Auth: &wssafe.AuthOptions{HMACSecret: secret, InsecureAllowWeakSecret: true}})
	require.NoError(t, err)
	assert.Equal(t, []string{"wssafe: low-entropy HMAC secret accepted; anyone who guesses it can mint tokens"}, rec.warnings(wssafe.EventInsecureConfig))
}

// Secrets from a real random generator pass, raw or as text: `openssl
// rand 32`, `openssl rand -hex 16` (32 hex digits), `openssl rand -base64
// 24` (32 base64 characters), and their longer forms.
func TestRandomHMACSecretsAccepted(t *testing.T) {
	t.Parallel()
	for i := range 3000 {
		b := make([]byte, 48)
		rand.Read(b)
		var secret []byte
		switch i % 6 {
		case 0:
			secret = b[:32]
		case 1:
			secret = []byte(hex.EncodeToString(b[:16]))
		case 2:
			secret = []byte(base64.StdEncoding.EncodeToString(b[:24]))
		case 3:
			secret = []byte(base64.RawURLEncoding.EncodeToString(b[:24]))
		case 4:
			secret = []byte(hex.EncodeToString(b[:32]))
		case 5:
			secret = []byte(base64.StdEncoding.EncodeToString(b[:32]))
		}
		_, err := wssafe.New(echo, &wssafe.Options{Logger: quiet(), Auth: &wssafe.AuthOptions{HMACSecret: secret}})
		require.NoError(t, err, "secret form %d", i%6)
	}
}

func TestLongAuthTimeoutWarns(t *testing.T) {
	t.Parallel()
	logger, rec := newRecorder()
	_, err := wssafe.New(echo, &wssafe.Options{Logger: logger, Auth: &wssafe.AuthOptions{
		HMACSecret: randomSecret(t), Sources: wssafe.FromFirstMessage, AuthTimeout: 2 * time.Minute}})
	require.NoError(t, err)
	warns := rec.warnings(wssafe.EventInsecureConfig)
	require.Len(t, warns, 1)
	assert.Contains(t, warns[0], "AuthTimeout over a minute")

	logger, rec = newRecorder()
	_, err = wssafe.New(echo, &wssafe.Options{Logger: logger, Auth: &wssafe.AuthOptions{
		HMACSecret: randomSecret(t), Sources: wssafe.FromFirstMessage, AuthTimeout: time.Minute}})
	require.NoError(t, err)
	assert.Empty(t, rec.warnings(wssafe.EventInsecureConfig))
}
