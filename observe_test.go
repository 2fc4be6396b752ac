package wssafe_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wssafe/wssafe"
)

// recorder keeps everything its Observe method, an Options.Observer, sees.
type recorder struct {
	mu  sync.Mutex
	obs []wssafe.Observation
}

func (r *recorder) Observe(o wssafe.Observation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.obs = append(r.obs, o)
}

func (r *recorder) all() []wssafe.Observation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]wssafe.Observation(nil), r.obs...)
}

// tally counts observations as "kind" or "kind/reason".
func tally(obs []wssafe.Observation) map[string]int {
	out := map[string]int{}
	for _, o := range obs {
		k := o.Kind.String()
		if o.Reason != "" {
			k += "/" + o.Reason
		}
		out[k]++
	}
	return out
}

// bySession returns the kinds observed for s, in order.
func bySession(obs []wssafe.Observation, s *wssafe.Session) []string {
	var out []string
	for _, o := range obs {
		if o.Session == s {
			out = append(out, o.Kind.String())
		}
	}
	return out
}

// scripted answers "bad" with a MessageError, panics on "boom", and echoes
// anything else.
var scripted = wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
	switch m.Text() {
	case "bad":
		return &wssafe.MessageError{Code: "invalid_message", Message: "no"}
	case "boom":
		panic("scripted panic")
	}
	return echo(ctx, s, m)
})

// The Observer sees every event exactly once, and Stats agrees with it.
func TestObserverAndStats(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	clock := newFakeClock()
	opened := make(chan *wssafe.Session, 4)
	opts := &wssafe.Options{
		Observer:       rec.Observe,
		MessageRate:    wssafe.Rate{PerSecond: 1, Burst: 3},
		DenyIPs:        []string{"203.0.113.0/24"},
		TrustedProxies: []string{"127.0.0.1/32"},
		OnOpen:         func(s *wssafe.Session) error { opened <- s; return nil },
	}
	ep, url := serverWith(t, scripted, opts, wssafe.Hooks{Clock: clock})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// One refused handshake.
	dialRefused(t, url, hdr("X-Forwarded-For", "203.0.113.9"))

	// Session A: a message, an invalid message, a panic (1011).
	a := dialWith(t, url, nil)
	sa := <-opened
	echoOnce(t, a, "hello")
	require.NoError(t, a.Write(ctx, websocket.MessageText, []byte("bad")))
	assert.Contains(t, readText(t, a), `"code":"invalid_message"`)
	require.NoError(t, a.Write(ctx, websocket.MessageText, []byte("boom")))
	assert.Equal(t, websocket.StatusInternalError, readClose(t, a).Code)

	// Session B: three messages, then one over the rate (1008).
	b := dialWith(t, url, nil)
	sb := <-opened
	for _, m := range []string{"1", "2", "3"} {
		echoOnce(t, b, m)
	}
	sendExpectClose(t, b, "4")

	// The close is observed just after the session leaves the Hub.
	require.Eventually(t, func() bool {
		return ep.Stats().Active == 0 && tally(rec.all())["session_closed"] == 2
	}, 5*time.Second, 10*time.Millisecond)
	obs := rec.all()
	assert.Equal(t, map[string]int{
		"handshake_refused/ip_denied":       1,
		"handshake_accepted":                2,
		"session_opened":                    2,
		"message_handled":                   6, // hello, bad, boom, 1, 2, 3; not the one over the rate
		"validation_failed/invalid_message": 1,
		"panicked/panic":                    1,
		"limit_hit/message_rate_exceeded":   1,
		"session_closed":                    2,
	}, tally(obs))
	// A MessageError is handled, then found invalid; a panic is recorded
	// before its message's handling time.
	assert.Equal(t, []string{"handshake_accepted", "session_opened", "message_handled", "message_handled",
		"validation_failed", "panicked", "message_handled", "session_closed"}, bySession(obs, sa))
	assert.Equal(t, []string{"handshake_accepted", "session_opened", "message_handled", "message_handled",
		"message_handled", "limit_hit", "session_closed"}, bySession(obs, sb))

	closes := map[*wssafe.Session]wssafe.Observation{}
	for _, o := range obs {
		if o.Kind == wssafe.SessionClosed {
			closes[o.Session] = o
		}
		if o.Kind == wssafe.HandshakeRefused {
			assert.Equal(t, netip.MustParseAddr("203.0.113.9"), o.ClientIP)
		}
	}
	assert.Equal(t, wssafe.StatusInternalError, closes[sa].Code)
	assert.Equal(t, wssafe.Traffic{MessagesIn: 3, BytesIn: 12, MessagesOut: 2, BytesOut: int64(len("Server received: hello") + len(`{"type":"error","code":"invalid_message","message":"no"}`))}, closes[sa].Traffic)
	assert.Equal(t, wssafe.StatusPolicyViolation, closes[sb].Code)
	assert.Equal(t, wssafe.Traffic{MessagesIn: 4, BytesIn: 4, MessagesOut: 3, BytesOut: 3 * int64(len("Server received: 1"))}, closes[sb].Traffic)

	st := ep.Stats()
	assert.Equal(t, 0, st.Active)
	assert.Equal(t, uint64(2), st.Accepted)
	assert.Equal(t, uint64(2), st.Opened)
	assert.Equal(t, map[string]uint64{wssafe.EventIPDenied: 1}, st.Refused)
	assert.Equal(t, map[wssafe.StatusCode]uint64{wssafe.StatusInternalError: 1, wssafe.StatusPolicyViolation: 1}, st.Closed)
	assert.Equal(t, map[string]uint64{wssafe.EventMessageRate: 1}, st.LimitHits)
	assert.Equal(t, map[string]uint64{wssafe.EventInvalidMessage: 1}, st.ValidationFailures)
	assert.Equal(t, uint64(1), st.Panics)
	sum := closes[sa].Traffic
	sum.MessagesIn += closes[sb].Traffic.MessagesIn
	sum.BytesIn += closes[sb].Traffic.BytesIn
	sum.MessagesOut += closes[sb].Traffic.MessagesOut
	sum.BytesOut += closes[sb].Traffic.BytesOut
	assert.Equal(t, sum, st.Traffic)
}

// The authentication step reports through the same path.
func TestAuthObservations(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	ep, err := wssafe.New(echo, &wssafe.Options{Observer: rec.Observe})
	require.NoError(t, err)
	ip := netip.MustParseAddr("192.0.2.1")
	wssafe.RecordAuth(ep, nil, ip, "")
	wssafe.RecordAuth(ep, nil, ip, "invalid_token")
	assert.Equal(t, map[string]int{"auth_succeeded": 1, "auth_failed/invalid_token": 1}, tally(rec.all()))
	st := ep.Stats()
	assert.Equal(t, uint64(1), st.AuthSucceeded)
	assert.Equal(t, map[string]uint64{"invalid_token": 1}, st.AuthFailed)
}

func nopObserver(wssafe.Observation) {}

// BenchmarkEchoObserver measures the echo round trip over a real
// connection with no Observer and with one that does nothing: a nil
// Observer must cost nothing, a no-op one must not allocate.
func BenchmarkEchoObserver(b *testing.B) {
	for _, bc := range []struct {
		name string
		obs  func(wssafe.Observation)
	}{{"nil", nil}, {"nop", nopObserver}} {
		b.Run(bc.name, func(b *testing.B) {
			logger := slog.New(slog.NewTextHandler(io.Discard, nil))
			ep, err := wssafe.New(echo, &wssafe.Options{Observer: bc.obs, Logger: logger})
			require.NoError(b, err)
			srv := httptest.NewServer(ep)
			defer srv.Close()
			defer ep.Shutdown(context.Background())
			ctx := context.Background()
			c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
			require.NoError(b, err)
			defer c.CloseNow()
			msg := []byte("hello")
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
					b.Fatal(err)
				}
				if _, _, err := c.Read(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
