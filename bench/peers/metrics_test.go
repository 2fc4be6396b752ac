package peers_test

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wssafe/wssafe"
	"github.com/wssafe/wssafe/bench/peers"
)

// TestMeteredPeers checks that the echo with each metrics adapter wired
// echoes like the others, and that Close stops its periodic reads.
func TestMeteredPeers(t *testing.T) {
	for _, impl := range []string{"wssafe-prom", "wssafe-otel", "wssafe-otelx"} {
		t.Run(impl, func(t *testing.T) {
			h, err := peers.Handlers()[impl]()
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(h)
			defer srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			if err := c.Write(ctx, websocket.MessageText, []byte("hello")); err != nil {
				t.Fatal(err)
			}
			if _, got, err := c.Read(ctx); err != nil || string(got) != "hello" {
				t.Fatalf("echo = %q, %v; want hello", got, err)
			}
			closer, ok := h.(io.Closer)
			if !ok {
				t.Fatalf("%s's handler is %T, not an io.Closer", impl, h)
			}
			if err := closer.Close(); err != nil {
				t.Fatal(err)
			}
			if err := closer.Close(); err != nil { // a second Close is harmless
				t.Fatal(err)
			}
		})
	}
}

// TestMetricsObserver checks that every adapter's Observe takes a message's
// observation, and that an unknown adapter is refused.
func TestMetricsObserver(t *testing.T) {
	for _, name := range []string{"prom", "otel", "otel-noexemplars"} {
		observe, stop, err := peers.MetricsObserver(name)
		if err != nil {
			t.Fatal(err)
		}
		observe(wssafe.Observation{Kind: wssafe.MessageHandled, Duration: time.Microsecond, Size: 5})
		stop()
	}
	if _, _, err := peers.MetricsObserver("statsd"); err == nil {
		t.Fatal("MetricsObserver(statsd): no error")
	}
}
