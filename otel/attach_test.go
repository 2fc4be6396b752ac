package wsotel_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"go.opentelemetry.io/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/wssafe/wssafe"
	wsotel "github.com/wssafe/wssafe/otel"
)

// Two Endpoints attached to one Metrics are reported as their sum; an
// Endpoint attached twice counts once.
func TestAttachSums(t *testing.T) {
	e := newEnv(t, &wssafe.Options{})
	ctx := testContext(t)
	ep2, err := wssafe.New(echo, &wssafe.Options{Observer: e.observer, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv2 := httptest.NewServer(ep2)
	t.Cleanup(srv2.Close)
	t.Cleanup(func() { _ = ep2.Shutdown(context.Background()) })
	e.m.Attach(ep2)
	e.m.Attach(e.ep)

	c1 := e.dial(ctx, nil)
	defer c1.CloseNow()
	e.roundTrip(ctx, c1, "one")
	c2, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv2.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.CloseNow()
	e.roundTrip(ctx, c2, "two")

	// Both sessions are open, and each has received its message.
	got, _ := e.collect(ctx)
	for k, want := range map[string]int64{
		"wssafe.server.active_sessions{}":                            2,
		"wssafe.server.handshakes{wssafe.handshake.status=accepted}": 2,
		"wssafe.server.messages{network.io.direction=receive}":       2,
	} {
		if got[k] != want {
			t.Errorf("%s = %d, want %d", k, got[k], want)
		}
	}
	c1.Close(websocket.StatusNormalClosure, "")
	c2.Close(websocket.StatusNormalClosure, "")
	e.waitClosed(ctx, 2)
	got, _ = e.collect(ctx)
	for k, want := range map[string]int64{
		"wssafe.server.active_sessions{}": 0,
		"wssafe.server.closed_sessions{wssafe.close.code=1000,wssafe.close.status=normal_closure}": 2,
		"wssafe.server.io{network.io.direction=transmit}":                                          6,
		"wssafe.server.message.size{} count":                                                       2,
	} {
		if got[k] != want {
			t.Errorf("%s = %d, want %d", k, got[k], want)
		}
	}
}

// Without a MeterProvider, New uses the global one.
func TestGlobalMeterProvider(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	otel.SetMeterProvider(mp)
	m, err := wsotel.New(wsotel.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m.Observe(wssafe.Observation{Kind: wssafe.MessageHandled, Size: 7})
	e := &testEnv{t: t, reader: reader}
	got, _ := e.collect(testContext(t))
	if got["wssafe.server.message.size{} sum"] != 7 {
		t.Errorf("through the global provider: %v", got)
	}
}
