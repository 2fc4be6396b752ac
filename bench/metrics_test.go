package bench_test

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/wssafe/wssafe"
	"github.com/wssafe/wssafe/bench/peers"
)

// BenchmarkMetricsCost is BenchmarkServerLoop for the metrics adapters:
// the wssafe echo without an Observer ("wssafe", the base of the ratios),
// with an Observer that does nothing ("wssafe-obs": the core's part, the
// handler's duration measured for every message), and with the
// Prometheus and OpenTelemetry adapters wired and read every second
// ("wssafe-prom", "wssafe-otel"; the reads run on the same CPU when the
// benchmark is pinned, so they are in ns/op), with the exemplar filter off
// for OpenTelemetry too ("wssafe-otelx"). The adapters' target is at most
// 3% more server CPU per message than "wssafe"; compare the cases in
// interleaved rounds on one CPU (see bench/PERFORMANCE.md). cpu-ns/op is
// the process's CPU time per message (both ends of the in-memory
// connection), which, unlike ns/op, other processes sharing the CPU do
// not inflate.
func BenchmarkMetricsCost(b *testing.B) {
	handlers := peers.Handlers()
	for _, size := range []int{64, 1024} {
		for _, impl := range []string{"wssafe", "wssafe-obs", "wssafe-prom", "wssafe-otel", "wssafe-otelx"} {
			b.Run(fmt.Sprintf("size=%d/impl=%s", size, impl), func(b *testing.B) {
				h, err := handlers[impl]()
				if err != nil {
					b.Fatal(err)
				}
				if c, ok := h.(io.Closer); ok {
					b.Cleanup(func() { c.Close() })
				}
				c := newScriptConn(size)
				ln := &oneConnListener{c: c, done: make(chan struct{})}
				srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
				go srv.Serve(ln)
				b.Cleanup(func() { ln.Close(); c.Close(); srv.Close() })
				c.waitFor(1) // the handshake is done and the loop runs
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				cpu := cpuNow()
				c.waitFor(int64(b.N) + 1)
				b.ReportMetric(float64(cpuNow()-cpu)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

// BenchmarkMetricsObserve is one MessageHandled observation given to each
// adapter's Observe, alone: the adapter's own work per message, without
// the core's timing ("wssafe-obs" in BenchmarkMetricsCost) or the loop.
func BenchmarkMetricsObserve(b *testing.B) {
	for _, impl := range []string{"prom", "otel", "otel-noexemplars"} {
		b.Run("adapter="+impl, func(b *testing.B) {
			observe, closeFn, err := peers.MetricsObserver(impl)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(closeFn)
			o := wssafe.Observation{Kind: wssafe.MessageHandled, Duration: 3 * time.Microsecond, Size: 64}
			b.ReportAllocs()
			for b.Loop() {
				observe(o)
			}
		})
	}
}
