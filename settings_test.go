package wssafe_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe"
)

// A zero Burst means the rate rounded up, for every Rate field: a PingRate
// of 10/s answers ten pings at once instead of closing at the first.
func TestZeroBurstPingRateAnswersPings(t *testing.T) {
	t.Parallel()
	_, url := server(t, echo, &wssafe.Options{PingRate: wssafe.Rate{PerSecond: 10}})
	c := dial(t, url, nil)
	ctx := ctxT(t)
	c.CloseRead(ctx)
	for i := range 10 {
		require.NoError(t, c.Ping(ctx), "ping %d", i+1)
	}

	// The burst is exactly 10: a flood past it still closes.
	raw := dialRaw(t, url, nil)
	for range 50 {
		if raw.frame(true, opPing, []byte("p")) != nil {
			break
		}
	}
	code, reason := raw.closeCode(5 * time.Second)
	assert.Equal(t, 1008, code)
	assert.Equal(t, "ping rate exceeded", reason)
}

// InvalidMessages{PerSecond: 1} is a budget of one (the rate rounded up),
// not a budget turned off.
func TestZeroBurstInvalidMessagesIsABudget(t *testing.T) {
	t.Parallel()
	opts := &wssafe.Options{InvalidMessages: wssafe.Rate{PerSecond: 1}}
	clock := newFakeClock() // stopped: the bucket does not refill
	_, url := serverWith(t, wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		return &wssafe.MessageError{Code: wssafe.CodeInvalidMessage, Message: "no"}
	}), opts, wssafe.Hooks{Clock: clock})
	c := dial(t, url, nil)
	ctx := ctxT(t)
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte("bad")))
	_, got, err := c.Read(ctx)
	require.NoError(t, err)
	assert.Contains(t, string(got), `"type":"error"`)
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte("bad again")))
	ce := readClose(t, c)
	assert.Equal(t, websocket.StatusPolicyViolation, ce.Code)
	assert.Equal(t, "too many invalid messages", ce.Reason)
}

// The off-by-default limits with a zero Burst let the first event through.
func TestZeroBurstOffByDefaultRates(t *testing.T) {
	t.Parallel()
	opts := &wssafe.Options{HandshakeRate: wssafe.Rate{PerSecond: 0.5}, MessageRate: wssafe.Rate{PerSecond: 0.5}}
	_, url := serverWith(t, echo, opts, wssafe.Hooks{Clock: newFakeClock()})
	c := dial(t, url, nil)
	echoOnce(t, c, "first")
	resp := dialRefused(t, url, nil) // the second handshake from this address
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	require.NoError(t, c.Write(ctxT(t), websocket.MessageText, []byte("second")))
	assert.Equal(t, websocket.StatusPolicyViolation, readClose(t, c).Code)
}

func TestRateOptionsRefused(t *testing.T) {
	t.Parallel()
	nan, inf := math.NaN(), math.Inf(1)
	for name, tc := range map[string]struct {
		opts wssafe.Options
		want []string
	}{
		"NaN handshake rate":      {wssafe.Options{HandshakeRate: wssafe.Rate{PerSecond: nan}}, []string{"HandshakeRate.PerSecond is NaN", "finite"}},
		"infinite message rate":   {wssafe.Options{MessageRate: wssafe.Rate{PerSecond: inf}}, []string{"MessageRate.PerSecond is +Inf", "zero Rate leaves the limit off"}},
		"-Inf byte rate":          {wssafe.Options{ByteRate: wssafe.Rate{PerSecond: math.Inf(-1)}}, []string{"ByteRate.PerSecond is -Inf"}},
		"negative message rate":   {wssafe.Options{MessageRate: wssafe.Rate{PerSecond: -1}}, []string{"MessageRate.PerSecond must not be negative"}},
		"negative ping rate":      {wssafe.Options{PingRate: wssafe.Rate{PerSecond: -1}}, []string{"PingRate.PerSecond must not be negative", "InsecureNoPingLimit"}},
		"NaN ping rate":           {wssafe.Options{PingRate: wssafe.Rate{PerSecond: nan, Burst: 5}}, []string{"PingRate.PerSecond is NaN"}},
		"ping burst without rate": {wssafe.Options{PingRate: wssafe.Rate{Burst: 5}}, []string{"PingRate.Burst is set without PerSecond", "Rate{PerSecond: 1, Burst: 5}"}},
		"negative invalid burst":  {wssafe.Options{InvalidMessages: wssafe.Rate{Burst: -1}}, []string{"InvalidMessages.Burst is set without PerSecond", "Burst: 1}", "CloseOnInvalidMessage"}},
		"negative invalid burst with a rate": {wssafe.Options{InvalidMessages: wssafe.Rate{PerSecond: 1, Burst: -1}},
			[]string{"InvalidMessages.Burst must not be negative", "CloseOnInvalidMessage"}},
		"infinite invalid rate": {wssafe.Options{InvalidMessages: wssafe.Rate{PerSecond: inf}}, []string{"InvalidMessages.PerSecond is +Inf"}},
		"burst without rate":    {wssafe.Options{HandshakeRate: wssafe.Rate{Burst: 5}}, []string{"HandshakeRate.Burst is set without PerSecond"}},
		"negative burst":        {wssafe.Options{SubjectMessageRate: wssafe.Rate{PerSecond: 1, Burst: -1}}, []string{"SubjectMessageRate.Burst must not be negative"}},
		"rate that never refills": {wssafe.Options{PingRate: wssafe.Rate{PerSecond: 1e-9, Burst: 3}},
			[]string{"PingRate.PerSecond 1e-09 never refills", "1.0/86400"}},
		"byte burst below the read limit": {wssafe.Options{ReadLimit: 1024, ByteRate: wssafe.Rate{PerSecond: 100, Burst: 100}},
			[]string{"ByteRate.Burst must be at least ReadLimit (1024)", "Burst: 1024"}},
		"ping limit off and set": {wssafe.Options{InsecureNoPingLimit: true, PingRate: wssafe.Rate{PerSecond: 5}},
			[]string{"PingRate and InsecureNoPingLimit contradict"}},
		"strict and a budget": {wssafe.Options{CloseOnInvalidMessage: true, InvalidMessages: wssafe.Rate{PerSecond: 1}},
			[]string{"InvalidMessages and CloseOnInvalidMessage contradict"}},
	} {
		_, err := wssafe.New(echo, &tc.opts)
		require.Error(t, err, name)
		for _, w := range tc.want {
			assert.Contains(t, err.Error(), w, name)
		}
	}
	// The slowest rate allowed, and the largest, are accepted.
	_, err := wssafe.New(echo, &wssafe.Options{InvalidMessages: wssafe.Rate{PerSecond: 1.0 / 86400, Burst: 3}, MessageRate: wssafe.Rate{PerSecond: 1e300}})
	assert.NoError(t, err)
}

// InsecureNoPingLimit is the one way to let pings through unlimited, and
// New says so.
func TestInsecureNoPingLimit(t *testing.T) {
	t.Parallel()
	logger, rec := newRecorder()
	_, url := server(t, echo, &wssafe.Options{InsecureNoPingLimit: true, Logger: logger})
	assert.Equal(t, []string{"wssafe: ping limit disabled; a peer can make the server write pongs without end"},
		rec.warnings(wssafe.EventInsecureConfig))

	c := dialRaw(t, url, nil)
	const n = 3 * wssafe.DefaultPingBurst
	for range n {
		require.NoError(t, c.frame(true, opPing, []byte("p")))
	}
	require.NoError(t, c.frame(true, opText, []byte("after")))
	pongs := 0
	for {
		f, err := c.readFrame()
		require.NoError(t, err)
		if f.op == opPong {
			pongs++
			continue
		}
		require.Equal(t, byte(opText), f.op)
		assert.Equal(t, "Server received: after", string(f.payload))
		break
	}
	assert.Equal(t, n, pongs, "every ping answered")
	assert.Empty(t, rec.warnings(wssafe.EventPingFlood))
}

func TestSubjectLimitsNeedAuth(t *testing.T) {
	t.Parallel()
	_, err := wssafe.New(echo, &wssafe.Options{MaxConnsPerSubject: 2})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "MaxConnsPerSubject needs Auth")
	assert.Contains(t, err.Error(), "MaxConnsPerIP")

	_, err = wssafe.New(echo, &wssafe.Options{SubjectMessageRate: wssafe.Rate{PerSecond: 5}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "SubjectMessageRate needs Auth")
	assert.Contains(t, err.Error(), "MessageRate")

	o := &wssafe.Options{MaxConnsPerSubject: 2, SubjectMessageRate: wssafe.Rate{PerSecond: 5},
		Auth: &wssafe.AuthOptions{HMACSecret: randomSecret(t)}}
	_, err = wssafe.New(echo, o)
	assert.NoError(t, err)
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
