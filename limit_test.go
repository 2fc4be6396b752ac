package wssafe_test

import (
	"context"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wssafe/wssafe"
)

// sendExpectClose sends msg and requires the session to end with 1008
// "rate limit exceeded".
func sendExpectClose(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(msg)))
	ce := readClose(t, c)
	assert.Equal(t, websocket.StatusPolicyViolation, ce.Code)
	assert.Equal(t, "rate limit exceeded", ce.Reason)
}

func TestMessageRatePerSession(t *testing.T) {
	t.Parallel()
	clock := newFakeClock() // frozen: no refill unless advanced
	logger, logs := newLogger()
	opts := &wssafe.Options{MessageRate: wssafe.Rate{PerSecond: 1, Burst: 3}, Logger: logger}
	ep, url := serverWith(t, echo, opts, wssafe.Hooks{Clock: clock})
	c := dialWith(t, url, nil)
	for _, m := range []string{"1", "2", "3"} {
		echoOnce(t, c, m)
	}
	clock.Advance(time.Second)
	echoOnce(t, c, "refilled")

	// Another session has its own budget.
	other := dialWith(t, url, nil)
	echoOnce(t, other, "mine")

	sendExpectClose(t, c, "over")
	assert.Contains(t, logs.String(), `"event":"message_rate_exceeded"`)
	echoOnce(t, other, "unaffected")
	assert.Equal(t, uint64(1), ep.Stats().LimitHits[wssafe.EventMessageRate])
}

// Two sessions of one subject share one budget; a third subject's session
// is unaffected.
func TestSubjectMessageBudgetShared(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	clock := f.clock
	opts := headerAuth(f)
	opts.SubjectMessageRate = wssafe.Rate{PerSecond: 1, Burst: 4}
	ep, url := f.server(t, echo, opts)
	a1 := dialWith(t, url, f.as("alice"))
	a2 := dialWith(t, url, f.as("alice"))
	bob := dialWith(t, url, f.as("bob"))

	echoOnce(t, a1, "a1-1")
	echoOnce(t, a1, "a1-2")
	echoOnce(t, a2, "a2-1")
	echoOnce(t, a2, "a2-2")
	for _, m := range []string{"b1", "b2", "b3", "b4"} {
		echoOnce(t, bob, m)
	}
	// Alice's fifth message, from either tab, is over the shared budget.
	sendExpectClose(t, a2, "a2-3")
	require.Eventually(t, func() bool { return len(ep.Hub().BySubject("alice")) == 1 }, 5*time.Second, 10*time.Millisecond)

	// The other tab is still open and gets the refill.
	clock.Advance(time.Second)
	echoOnce(t, a1, "a1-3")
	assert.Equal(t, uint64(1), ep.Stats().LimitHits[wssafe.EventSubjectRate])
}

func TestByteRate(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	opts := &wssafe.Options{ReadLimit: 1024, ByteRate: wssafe.Rate{PerSecond: 100}}
	ep, url := serverWith(t, echo, opts, wssafe.Hooks{Clock: clock})
	c := dialWith(t, url, nil)
	echoOnce(t, c, strings.Repeat("a", 1000)) // the burst defaults to ReadLimit
	echoOnce(t, c, strings.Repeat("b", 24))
	clock.Advance(time.Second)
	echoOnce(t, c, strings.Repeat("c", 100))
	sendExpectClose(t, c, "d")
	assert.Equal(t, uint64(1), ep.Stats().LimitHits[wssafe.EventByteRate])
}

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
