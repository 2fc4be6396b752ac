package wsotel_test

import (
	"context"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/wssafe/wssafe"
	wsotel "github.com/wssafe/wssafe/otel"
)

// Observe allocates nothing on the paths that run per message and per
// session, with the SDK behind it: the attribute sets are built at New.
func TestObserveAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	m, err := wsotel.New(wsotel.Options{MeterProvider: mp})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []wssafe.Observation{
		{Kind: wssafe.MessageHandled, Duration: time.Millisecond, Size: 100},
		{Kind: wssafe.SessionClosed, Duration: time.Minute, Code: wssafe.StatusNormalClosure},
		{Kind: wssafe.SessionClosed, Duration: time.Minute, Code: 4321},
		{Kind: wssafe.HandshakeAccepted, Duration: time.Millisecond},
		{Kind: wssafe.HandshakeRefused, Duration: time.Millisecond, Reason: wssafe.EventAtCapacity},
	} {
		m.Observe(o) // the SDK's first record of a series allocates it
		if n := testing.AllocsPerRun(100, func() { m.Observe(o) }); n != 0 {
			t.Errorf("%v: %.0f allocations", o.Kind, n)
		}
	}
}
