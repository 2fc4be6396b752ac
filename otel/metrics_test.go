package wsotel_test

// End to end: a real Endpoint on an httptest server, real coder/websocket
// clients, and the SDK's ManualReader reading what the adapter reports.

import (
	"context"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/wssafe/wssafe"
	wsotel "github.com/wssafe/wssafe/otel"
)

var quiet = slog.New(slog.DiscardHandler)

// A testEnv is one Endpoint reported through one Metrics.
type testEnv struct {
	t      *testing.T
	reader *sdkmetric.ManualReader
	m      *wsotel.Metrics
	ep     *wssafe.Endpoint
	url    string
	closed chan wssafe.StatusCode // every SessionClosed, once Observe has seen it

	observer func(wssafe.Observation) // Observe, then the closes to closed
	served   chan struct{}            // a ServeHTTP returned: its handshake is no longer in progress
}

// echo writes every text message back; "panic" panics.
var echo = wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
	if m.Text() == "panic" {
		panic("told to")
	}
	return s.WriteText(ctx, m.Text())
})

func newEnv(t *testing.T, opts *wssafe.Options) *testEnv {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	m, err := wsotel.New(wsotel.Options{MeterProvider: mp})
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, reader: reader, m: m, closed: make(chan wssafe.StatusCode, 64), served: make(chan struct{}, 64)}
	e.observer = wssafe.Observers(m.Observe, func(o wssafe.Observation) {
		if o.Kind == wssafe.SessionClosed {
			e.closed <- o.Code
		}
	})
	opts.Observer = e.observer
	opts.SecurityLogInterval = -1
	opts.Logger = quiet
	if e.ep, err = wssafe.New(echo, opts); err != nil {
		t.Fatal(err)
	}
	m.Attach(e.ep)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { e.served <- struct{}{} }()
		e.ep.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { _ = e.ep.Shutdown(context.Background()) })
	e.url = "ws" + strings.TrimPrefix(srv.URL, "http")
	return e
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (e *testEnv) dial(ctx context.Context, opts *websocket.DialOptions) *websocket.Conn {
	e.t.Helper()
	c, _, err := websocket.Dial(ctx, e.url, opts)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// roundTrip sends msg and wants it back.
func (e *testEnv) roundTrip(ctx context.Context, c *websocket.Conn, msg string) {
	e.t.Helper()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		e.t.Fatal(err)
	}
	if _, got, err := c.Read(ctx); err != nil || string(got) != msg {
		e.t.Fatalf("echo of %q: %q, %v", msg, got, err)
	}
}

// closedBy writes one message of type typ and wants the server to close
// with code.
func (e *testEnv) closedBy(ctx context.Context, typ websocket.MessageType, msg []byte, code websocket.StatusCode) {
	e.t.Helper()
	c := e.dial(ctx, nil)
	defer c.CloseNow()
	if err := c.Write(ctx, typ, msg); err != nil {
		e.t.Fatal(err)
	}
	if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != code {
		e.t.Fatalf("after %d bytes: %v, want close %d", len(msg), err, code)
	}
}

// waitClosed waits for n sessions to be reported closed.
func (e *testEnv) waitClosed(ctx context.Context, n int) {
	e.t.Helper()
	for range n {
		select {
		case <-e.closed:
		case <-ctx.Done():
			e.t.Fatal("sessions not reported closed")
		}
	}
}

// waitServed waits for n handshakes to be answered.
func (e *testEnv) waitServed(ctx context.Context, n int) {
	e.t.Helper()
	for range n {
		select {
		case <-e.served:
		case <-ctx.Done():
			e.t.Fatal("handshakes not answered")
		}
	}
}

// collect reads every data point: counters, gauges and up-down counters
// by "name{attributes}", histograms as "name{attributes} count" (and
// "sum" for the integer one).
func (e *testEnv) collect(ctx context.Context) (points map[string]int64, units map[string]string) {
	e.t.Helper()
	var rm metricdata.ResourceMetrics
	if err := e.reader.Collect(ctx, &rm); err != nil {
		e.t.Fatal(err)
	}
	points, units = map[string]int64{}, map[string]string{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != wsotel.ScopeName {
			e.t.Errorf("scope %q, want %q", sm.Scope.Name, wsotel.ScopeName)
		}
		for _, mt := range sm.Metrics {
			units[mt.Name] = mt.Unit
			key := func(a attribute.Set) string { return mt.Name + "{" + a.Encoded(attribute.DefaultEncoder()) + "}" }
			switch d := mt.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					points[key(dp.Attributes)] = dp.Value
				}
				if d.IsMonotonic != !strings.HasPrefix(mt.Name, "wssafe.server.active_") {
					e.t.Errorf("%s: monotonic %v", mt.Name, d.IsMonotonic)
				}
			case metricdata.Gauge[int64]:
				for _, dp := range d.DataPoints {
					points[key(dp.Attributes)] = dp.Value
				}
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					points[key(dp.Attributes)+" count"] = int64(dp.Count)
				}
			case metricdata.Histogram[int64]:
				for _, dp := range d.DataPoints {
					points[key(dp.Attributes)+" count"] = int64(dp.Count)
					points[key(dp.Attributes)+" sum"] = dp.Sum
				}
			default:
				e.t.Errorf("%s: unexpected data %T", mt.Name, mt.Data)
			}
		}
	}
	return points, units
}

// diff reports every point that differs from want, and every point want
// does not list.
func diff(t *testing.T, got, want map[string]int64) {
	t.Helper()
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if g, ok := got[k]; !ok || g != want[k] {
			t.Errorf("%s = %d (reported: %v), want %d", k, g, ok, want[k])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected point %s = %d", k, got[k])
		}
	}
}

// A scripted run: handshakes accepted and one refused, messages echoed,
// an invalid message, a panic, a message over the read limit, a normal
// close and a client's private close code, each counted exactly once.
func TestScriptedRun(t *testing.T) {
	e := newEnv(t, &wssafe.Options{Accept: []wssafe.MessageType{wssafe.MessageText}, ReadLimit: 64})
	ctx := testContext(t)

	a := e.dial(ctx, nil)
	e.roundTrip(ctx, a, "hello")
	e.roundTrip(ctx, a, "world!")
	if err := a.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	e.closedBy(ctx, websocket.MessageBinary, []byte{0xff}, websocket.StatusUnsupportedData)
	e.closedBy(ctx, websocket.MessageText, []byte("panic"), websocket.StatusInternalError)
	e.closedBy(ctx, websocket.MessageText, make([]byte, 100), websocket.StatusMessageTooBig)
	private := e.dial(ctx, nil)
	if err := private.Close(4321, ""); err != nil {
		t.Fatal(err)
	}
	_, resp, err := websocket.Dial(ctx, e.url, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://evil.example"}}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin handshake: %v, %v; want HTTP 403", resp, err)
	}
	e.waitServed(ctx, 6)
	e.waitClosed(ctx, 5)

	got, units := e.collect(ctx)
	diff(t, got, map[string]int64{
		"wssafe.server.active_sessions{}":                                                            0,
		"wssafe.server.active_handshakes{}":                                                          0,
		"wssafe.server.dropped_messages{}":                                                           0,
		"wssafe.server.handshakes{wssafe.handshake.status=accepted}":                                 5,
		"wssafe.server.handshakes{error.type=origin_refused,wssafe.handshake.status=refused}":        1,
		"wssafe.server.opened_sessions{}":                                                            5,
		"wssafe.server.closed_sessions{wssafe.close.code=1000,wssafe.close.status=normal_closure}":   1,
		"wssafe.server.closed_sessions{wssafe.close.code=1003,wssafe.close.status=unsupported_data}": 1,
		"wssafe.server.closed_sessions{wssafe.close.code=1011,wssafe.close.status=internal_error}":   1,
		"wssafe.server.closed_sessions{wssafe.close.code=1009,wssafe.close.status=message_too_big}":  1,
		"wssafe.server.closed_sessions{wssafe.close.code=other,wssafe.close.status=other}":           1,
		"wssafe.server.authentications{wssafe.auth.status=succeeded}":                                0,
		"wssafe.server.limit_hits{wssafe.limit=message_too_big}":                                     1,
		"wssafe.server.invalid_messages{error.type=unsupported_type}":                                1,
		"wssafe.server.panics{}":                                                                     1,
		"wssafe.server.messages{network.io.direction=receive}":                                       3,
		"wssafe.server.messages{network.io.direction=transmit}":                                      2,
		"wssafe.server.io{network.io.direction=receive}":                                             16,
		"wssafe.server.io{network.io.direction=transmit}":                                            11,
		"wssafe.server.suppressed_log_records{}":                                                     0,

		"wssafe.server.session.duration{wssafe.close.code=1000,wssafe.close.status=normal_closure} count":   1,
		"wssafe.server.session.duration{wssafe.close.code=1003,wssafe.close.status=unsupported_data} count": 1,
		"wssafe.server.session.duration{wssafe.close.code=1011,wssafe.close.status=internal_error} count":   1,
		"wssafe.server.session.duration{wssafe.close.code=1009,wssafe.close.status=message_too_big} count":  1,
		"wssafe.server.session.duration{wssafe.close.code=other,wssafe.close.status=other} count":           1,
		"wssafe.server.message.size{} count":                                                                3,
		"wssafe.server.message.size{} sum":                                                                  16,
		"wssafe.server.handler.duration{} count":                                                            3, // the panic too
		"wssafe.server.handshake.duration{wssafe.handshake.status=accepted} count":                          5,
		"wssafe.server.handshake.duration{error.type=origin_refused,wssafe.handshake.status=refused} count": 1,
	})
	for name, unit := range map[string]string{
		"wssafe.server.active_sessions": "{session}", "wssafe.server.handshakes": "{handshake}",
		"wssafe.server.io": "By", "wssafe.server.session.duration": "s",
		"wssafe.server.handler.duration": "s", "wssafe.server.handshake.duration": "s",
		"wssafe.server.message.size": "By", "wssafe.server.active_handshakes": "{handshake}",
	} {
		if units[name] != unit {
			t.Errorf("%s: unit %q, want %q", name, units[name], unit)
		}
	}
}
