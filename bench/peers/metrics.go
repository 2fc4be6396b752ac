package peers

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/exemplar"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/wssafe/wssafe"
	wsotel "github.com/wssafe/wssafe/otel"
	wsprom "github.com/wssafe/wssafe/prometheus"
)

// ScrapeInterval is how often the metered peers' metrics are read, as a
// Prometheus server or an OpenTelemetry PeriodicReader would.
const ScrapeInterval = time.Second

// Metered is an echo handler whose metrics are read every ScrapeInterval
// by a goroutine of its own, until Close.
type Metered struct {
	http.Handler
	stop chan struct{}
	done sync.WaitGroup
	once sync.Once
}

// Close stops the periodic reads and waits for the last one to end.
func (m *Metered) Close() error {
	m.once.Do(func() { close(m.stop) })
	m.done.Wait()
	return nil
}

// every runs f every ScrapeInterval until m is closed.
func (m *Metered) every(f func()) {
	m.stop = make(chan struct{})
	m.done.Add(1)
	go func() {
		defer m.done.Done()
		t := time.NewTicker(ScrapeInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				f()
			case <-m.stop:
				return
			}
		}
	}()
}

// WssafeObserved is [Wssafe] with an Observer that does nothing: what the
// core's observation costs per message before any adapter's own work.
func WssafeObserved() (http.Handler, error) {
	return newWssafe(func(o *wssafe.Options) { o.Observer = func(wssafe.Observation) {} })
}

// WssafeProm is [Wssafe] with the Prometheus adapter (package wsprom)
// wired as an application would: its Observe as the Observer, attached
// to the endpoint, registered on a registry of its own that is scraped
// every ScrapeInterval through promhttp's handler (the text exposition is
// encoded and discarded), like a Prometheus server scraping /metrics.
func WssafeProm() (*Metered, error) {
	m := wsprom.New(wsprom.Options{})
	h, err := newWssafe(func(o *wssafe.Options) { o.Observer = wssafe.Observers(m.Observe) })
	if err != nil {
		return nil, err
	}
	m.Attach(h.(*wssafe.Endpoint))
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	req, err := http.NewRequest(http.MethodGet, "/metrics", nil)
	if err != nil {
		return nil, err
	}
	p := &Metered{Handler: h}
	p.every(func() { metrics.ServeHTTP(discardResponse{}, req) })
	return p, nil
}

// WssafeOtel is [Wssafe] with the OpenTelemetry adapter (package wsotel)
// on the SDK's MeterProvider, its histograms on (the SDK's default
// explicit-bucket aggregation), collected every ScrapeInterval through a
// ManualReader, as a PeriodicReader would before handing the data to an
// exporter.
func WssafeOtel() (*Metered, error) { return wssafeOtel() }

// WssafeOtelNoExemplars is [WssafeOtel] on a MeterProvider whose exemplar
// filter is off (sdkmetric.WithExemplarFilter(exemplar.AlwaysOffFilter),
// or OTEL_METRICS_EXEMPLAR_FILTER=always_off): the SDK's default, the
// trace-based filter, is asked at every Record whether the context holds
// a sampled span.
func WssafeOtelNoExemplars() (*Metered, error) {
	return wssafeOtel(sdkmetric.WithExemplarFilter(exemplar.AlwaysOffFilter))
}

func wssafeOtel(opts ...sdkmetric.Option) (*Metered, error) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(append(opts, sdkmetric.WithReader(reader))...)
	m, err := wsotel.New(wsotel.Options{MeterProvider: mp})
	if err != nil {
		return nil, err
	}
	h, err := newWssafe(func(o *wssafe.Options) { o.Observer = wssafe.Observers(m.Observe) })
	if err != nil {
		return nil, err
	}
	m.Attach(h.(*wssafe.Endpoint))
	p := &Metered{Handler: h}
	var rm metricdata.ResourceMetrics
	p.every(func() { _ = reader.Collect(context.Background(), &rm) })
	return p, nil
}

// MetricsObserver returns the Observe of adapter "prom", "otel" or
// "otel-noexemplars", set up as in WssafeProm, WssafeOtel and
// WssafeOtelNoExemplars but without an endpoint, and the func that stops
// its periodic reads.
func MetricsObserver(adapter string) (observe func(wssafe.Observation), stop func(), err error) {
	switch adapter {
	case "prom":
		m := wsprom.New(wsprom.Options{})
		return m.Observe, func() {}, nil
	case "otel", "otel-noexemplars":
		opts := []sdkmetric.Option{sdkmetric.WithReader(sdkmetric.NewManualReader())}
		if adapter == "otel-noexemplars" {
			opts = append(opts, sdkmetric.WithExemplarFilter(exemplar.AlwaysOffFilter))
		}
		mp := sdkmetric.NewMeterProvider(opts...)
		m, err := wsotel.New(wsotel.Options{MeterProvider: mp})
		if err != nil {
			return nil, nil, err
		}
		return m.Observe, func() { _ = mp.Shutdown(context.Background()) }, nil
	}
	return nil, nil, fmt.Errorf("peers: unknown metrics adapter %q (want prom, otel or otel-noexemplars)", adapter)
}

// discardResponse is an http.ResponseWriter that drops what it is given.
type discardResponse struct{}

func (discardResponse) Header() http.Header         { return http.Header{} }
func (discardResponse) Write(p []byte) (int, error) { return len(p), nil }
func (discardResponse) WriteHeader(int)             {}
