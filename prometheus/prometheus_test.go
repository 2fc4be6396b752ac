package wsprom_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/wssafe/wssafe"
	wsprom "github.com/wssafe/wssafe/prometheus"
)

var echo = wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
	return s.Write(ctx, m.Type, m.Data)
})

// fixture is an endpoint with HMAC authentication from the Authorization
// header, observed by a Metrics registered on a registry of its own.
type fixture struct {
	t      *testing.T
	secret []byte
	ep     *wssafe.Endpoint
	m      *wsprom.Metrics
	reg    *prometheus.Registry
	url    string
}

func newFixture(t *testing.T, o wsprom.Options) *fixture {
	t.Helper()
	f := &fixture{t: t, secret: []byte("metrics-test-hmac-secret-0123456")}
	f.m = wsprom.New(o)
	var mine atomic.Int64 // the application's own observer goes on beside the adapter
	ep, err := wssafe.New(echo, &wssafe.Options{
		Auth:                &wssafe.AuthOptions{HMACSecret: f.secret, Sources: wssafe.FromHeader},
		Observer:            wssafe.Observers(f.m.Observe, func(wssafe.Observation) { mine.Add(1) }),
		Logger:              slog.New(slog.DiscardHandler),
		SecurityLogInterval: -1,
		PingInterval:        -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.ep = ep
	f.m.Attach(ep)
	f.reg = prometheus.NewPedanticRegistry()
	f.reg.MustRegister(f.m)
	srv := httptest.NewServer(ep)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ep.Shutdown(ctx)
		srv.Close()
	})
	f.url = "ws" + strings.TrimPrefix(srv.URL, "http")
	return f
}

// token signs an HS256 token for subject with key.
func (f *fixture) token(key []byte, subject string) string {
	f.t.Helper()
	tok, err := jwt.NewBuilder().Subject(subject).Expiration(time.Now().Add(time.Hour)).Build()
	if err != nil {
		f.t.Fatal(err)
	}
	b, err := jwt.Sign(tok, jwt.WithKey(jwa.HS256(), key))
	if err != nil {
		f.t.Fatal(err)
	}
	return string(b)
}

// dial performs a handshake with the token and extra headers; it returns
// the connection, or nil and the refusal's status.
func (f *fixture) dial(tok string, kv ...string) (*websocket.Conn, int) {
	f.t.Helper()
	h := http.Header{"Authorization": {"Bearer " + tok}}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, f.url, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		if resp == nil {
			f.t.Fatalf("no HTTP response: %v", err)
		}
		return nil, resp.StatusCode
	}
	f.t.Cleanup(func() { c.CloseNow() })
	return c, http.StatusSwitchingProtocols
}

// roundTrip sends msg and requires its echo.
func roundTrip(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	if _, got, err := c.Read(ctx); err != nil || string(got) != msg {
		t.Fatalf("echo: %q, %v", got, err)
	}
}

// waitIdle waits until no session is live and no handshake in progress.
func (f *fixture) waitIdle() {
	f.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := f.ep.Stats()
		if st.Active == 0 && st.Handshaking == 0 {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("sessions still live: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// script runs a fixed set of handshakes, refusals, messages and closes.
func (f *fixture) script() {
	t := f.t
	good := f.token(f.secret, "alice")

	c, status := f.dial(good)
	if c == nil {
		t.Fatalf("handshake refused: %d", status)
	}
	roundTrip(t, c, "hello")   // 5 bytes
	roundTrip(t, c, "goodbye") // 7 bytes
	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}

	if _, status := f.dial(good, "Origin", "https://evil.example"); status != http.StatusForbidden {
		t.Fatalf("bad origin: %d, want 403", status)
	}
	if _, status := f.dial(f.token([]byte("not-the-secret-not-the-secret-00"), "alice")); status != http.StatusUnauthorized {
		t.Fatalf("bad token: %d, want 401", status)
	}

	// A close code of the peer's own choosing is bucketed.
	c, _ = f.dial(good)
	roundTrip(t, c, strings.Repeat("x", 100))
	if err := c.Close(4321, "peer's own"); err != nil {
		t.Fatal(err)
	}

	// Invalid UTF-8 in a text message: 1007, counted by reason.
	c, _ = f.dial(good)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte{0xff, 0xfe}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusInvalidFramePayloadData {
		t.Fatalf("invalid UTF-8: %v, want 1007", err)
	}
	f.waitIdle()
}

// The values after the script, exactly, through client_golang's registry.
func TestScriptedValues(t *testing.T) {
	t.Parallel()
	f := newFixture(t, wsprom.Options{})
	f.script()

	const want = `
# HELP wssafe_auth_failures_total Tokens refused, at the handshake or later, by reason.
# TYPE wssafe_auth_failures_total counter
wssafe_auth_failures_total{reason="signature"} 1
# HELP wssafe_auth_succeeded_total Tokens accepted.
# TYPE wssafe_auth_succeeded_total counter
wssafe_auth_succeeded_total 3
# HELP wssafe_handshakes_accepted_total Handshakes accepted.
# TYPE wssafe_handshakes_accepted_total counter
wssafe_handshakes_accepted_total 3
# HELP wssafe_handshakes_in_progress Upgrade requests being served.
# TYPE wssafe_handshakes_in_progress gauge
wssafe_handshakes_in_progress 0
# HELP wssafe_handshakes_refused_total Handshakes refused, by reason (a wssafe event name).
# TYPE wssafe_handshakes_refused_total counter
wssafe_handshakes_refused_total{reason="auth_failed"} 1
wssafe_handshakes_refused_total{reason="origin_refused"} 1
# HELP wssafe_invalid_messages_total Messages refused by validation, by reason.
# TYPE wssafe_invalid_messages_total counter
wssafe_invalid_messages_total{reason="invalid_utf8"} 1
# HELP wssafe_message_bytes_total Payload bytes of the data messages received and sent.
# TYPE wssafe_message_bytes_total counter
wssafe_message_bytes_total{direction="received"} 112
wssafe_message_bytes_total{direction="sent"} 112
# HELP wssafe_messages_total Data messages received from and sent to peers.
# TYPE wssafe_messages_total counter
wssafe_messages_total{direction="received"} 3
wssafe_messages_total{direction="sent"} 3
# HELP wssafe_panics_total Panics recovered in the handler or in Authorize.
# TYPE wssafe_panics_total counter
wssafe_panics_total 0
# HELP wssafe_sessions_active Live sessions, including those not yet authenticated.
# TYPE wssafe_sessions_active gauge
wssafe_sessions_active 0
# HELP wssafe_sessions_closed_total Sessions ended, by WebSocket close code (other: a code outside RFC 6455's and wssafe's).
# TYPE wssafe_sessions_closed_total counter
wssafe_sessions_closed_total{code="1000"} 1
wssafe_sessions_closed_total{code="1007"} 1
wssafe_sessions_closed_total{code="other"} 1
# HELP wssafe_sessions_opened_total Sessions admitted (authenticated, under the per-subject cap).
# TYPE wssafe_sessions_opened_total counter
wssafe_sessions_opened_total 3
# HELP wssafe_received_message_size_bytes Payload size of the messages that reached the handler chain.
# TYPE wssafe_received_message_size_bytes histogram
wssafe_received_message_size_bytes_bucket{le="64"} 2
wssafe_received_message_size_bytes_bucket{le="256"} 3
wssafe_received_message_size_bytes_bucket{le="1024"} 3
wssafe_received_message_size_bytes_bucket{le="4096"} 3
wssafe_received_message_size_bytes_bucket{le="16384"} 3
wssafe_received_message_size_bytes_bucket{le="65536"} 3
wssafe_received_message_size_bytes_bucket{le="262144"} 3
wssafe_received_message_size_bytes_bucket{le="1.048576e+06"} 3
wssafe_received_message_size_bytes_bucket{le="4.194304e+06"} 3
wssafe_received_message_size_bytes_bucket{le="+Inf"} 3
wssafe_received_message_size_bytes_sum 112
wssafe_received_message_size_bytes_count 3
`
	err := testutil.GatherAndCompare(f.reg, strings.NewReader(want),
		"wssafe_auth_failures_total", "wssafe_auth_succeeded_total", "wssafe_handshakes_accepted_total",
		"wssafe_handshakes_in_progress", "wssafe_handshakes_refused_total", "wssafe_invalid_messages_total",
		"wssafe_message_bytes_total", "wssafe_messages_total", "wssafe_panics_total", "wssafe_sessions_active",
		"wssafe_sessions_closed_total", "wssafe_sessions_opened_total", "wssafe_received_message_size_bytes")
	if err != nil {
		t.Error(err)
	}

	// The durations are real, so only their counts are exact.
	counts := map[string]uint64{}
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if h := m.GetHistogram(); h != nil {
				key := mf.GetName()
				for _, l := range m.GetLabel() {
					key += "/" + l.GetValue()
				}
				counts[key] = h.GetSampleCount()
			}
		}
	}
	for key, n := range map[string]uint64{
		"wssafe_handshake_duration_seconds/accepted": 3,
		"wssafe_handshake_duration_seconds/refused":  2,
		"wssafe_handler_duration_seconds":            3,
		"wssafe_session_duration_seconds":            3,
	} {
		if counts[key] != n {
			t.Errorf("%s: %d samples, want %d", key, counts[key], n)
		}
	}
}

// The metrics follow Prometheus' naming practices, as promlint checks them.
func TestLint(t *testing.T) {
	t.Parallel()
	f := newFixture(t, wsprom.Options{})
	f.script()
	problems, err := testutil.CollectAndLint(f.m)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// Metrics never registers itself: a fresh registry holds nothing, and a
// second registry can hold the same Metrics.
func TestNoImplicitRegistration(t *testing.T) {
	t.Parallel()
	m := wsprom.New(wsprom.Options{})
	if err := prometheus.DefaultRegisterer.Register(m); err != nil {
		t.Fatalf("the global registry already knew the collector: %v", err)
	}
	prometheus.DefaultRegisterer.Unregister(m)
	if n := testutil.CollectAndCount(m); n != 5 {
		t.Errorf("an unattached Metrics collects %d metrics, want its 5 histograms", n)
	}
}

// Two endpoints in one process, told apart by a constant label, on one
// registry.
func TestTwoEndpoints(t *testing.T) {
	t.Parallel()
	a := newFixture(t, wsprom.Options{ConstLabels: prometheus.Labels{"endpoint": "a"}})
	b := newFixture(t, wsprom.Options{ConstLabels: prometheus.Labels{"endpoint": "b"}})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(a.m, b.m)
	c, _ := a.dial(a.token(a.secret, "alice"))
	roundTrip(t, c, "x")
	const want = `
# HELP wssafe_handshakes_accepted_total Handshakes accepted.
# TYPE wssafe_handshakes_accepted_total counter
wssafe_handshakes_accepted_total{endpoint="a"} 1
wssafe_handshakes_accepted_total{endpoint="b"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "wssafe_handshakes_accepted_total"); err != nil {
		t.Error(err)
	}
}
