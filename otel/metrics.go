package wsotel

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/wssafe/wssafe"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// ScopeName is the instrumentation scope of every instrument: the meter
// is named after this module.
const ScopeName = "github.com/wssafe/wssafe/otel"

// Options configures [New].
type Options struct {
	// MeterProvider creates the meter. Nil means the global provider,
	// otel.GetMeterProvider(), which is a no-op until the program sets
	// one (otel.SetMeterProvider).
	MeterProvider metric.MeterProvider
}

// Metrics is the OpenTelemetry view of one or more Endpoints: the
// histograms [Metrics.Observe] records, and counters and gauges read from
// Endpoint.Stats at each collection (see [Metrics.Attach]). It is safe
// for concurrent use.
type Metrics struct {
	handler, handshake, session metric.Float64Histogram
	size                        metric.Int64Histogram

	// Attributes of the histograms, built once: Observe allocates nothing.
	// Each is a slice, passed as Record's variadic options: a slice
	// built at each call would escape to the heap.
	accepted    []metric.RecordOption
	refused     map[string][]metric.RecordOption            // by bounded reason
	closed      map[wssafe.StatusCode][]metric.RecordOption // by known code; other: closedOther
	closedOther []metric.RecordOption

	mu        sync.Mutex
	endpoints []*wssafe.Endpoint

	obs observables
}

// New creates the instruments on opts.MeterProvider's meter named
// [ScopeName]. An error from the provider (an invalid instrument, which
// this package does not create) is returned; the Metrics is then nil.
func New(opts Options) (*Metrics, error) {
	mp := opts.MeterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	meter := mp.Meter(ScopeName)
	m := newMetrics()
	err := errors.Join(m.histograms(meter), m.obs.create(meter))
	if err == nil {
		_, err = meter.RegisterCallback(m.collect, m.obs.all()...)
	}
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Bucket boundaries, advised to the SDK (a View can override them).
var (
	// sessionBuckets: SignalR's connection.duration boundaries, extended
	// to a day, since WebSocket sessions often last hours.
	sessionBuckets = []float64{0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300,
		600, 1800, 3600, 7200, 14400, 28800, 86400}
	// handlerBuckets: from 100 µs, as a callback is often that fast.
	handlerBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
		0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	// handshakeBuckets: HTTP's request duration boundaries, from 1 ms.
	handshakeBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5,
		0.75, 1, 2.5, 5, 7.5, 10}
	// sizeBuckets: powers of four from 16 bytes to 16 MiB.
	sizeBuckets = []float64{16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216}
)

func (m *Metrics) histograms(meter metric.Meter) error {
	var errs [4]error
	m.session, errs[0] = meter.Float64Histogram("wssafe.server.session.duration",
		metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(sessionBuckets...),
		metric.WithDescription("Duration of WebSocket sessions, by close code."))
	m.handler, errs[1] = meter.Float64Histogram("wssafe.server.handler.duration",
		metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(handlerBuckets...),
		metric.WithDescription("Time the handler chain took for a received message."))
	m.handshake, errs[2] = meter.Float64Histogram("wssafe.server.handshake.duration",
		metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(handshakeBuckets...),
		metric.WithDescription("Duration of WebSocket handshakes, accepted or refused."))
	m.size, errs[3] = meter.Int64Histogram("wssafe.server.message.size",
		metric.WithUnit("By"), metric.WithExplicitBucketBoundaries(sizeBuckets...),
		metric.WithDescription("Payload size of received messages handed to the handler."))
	return errors.Join(errs[:]...)
}

// Observe records o in the histograms. Give it to the Endpoint through
// Options.Observer, next to any observer of your own:
//
//	opts.Observer = wssafe.Observers(m.Observe, mine)
//
// It does not count: the counters come from Stats (see [Metrics.Attach]),
// so an Endpoint that is attached but not observed has every counter and
// gauge, and no histogram.
func (m *Metrics) Observe(o wssafe.Observation) {
	ctx := context.Background()
	switch o.Kind {
	case wssafe.MessageHandled:
		m.handler.Record(ctx, o.Duration.Seconds())
		m.size.Record(ctx, int64(o.Size))
	case wssafe.SessionClosed:
		m.session.Record(ctx, o.Duration.Seconds(), m.closeOption(o.Code)...)
	case wssafe.HandshakeAccepted:
		m.handshake.Record(ctx, o.Duration.Seconds(), m.accepted...)
	case wssafe.HandshakeRefused:
		m.handshake.Record(ctx, o.Duration.Seconds(), m.refused[bound(refusalReasons, o.Reason)]...)
	case wssafe.AuthFailed, wssafe.Panicked:
		if o.Session == nil { // a token refused at the handshake
			m.handshake.Record(ctx, o.Duration.Seconds(), m.refused[authRefusal(o)]...)
		}
	}
}

// authRefusal is the event a handshake refused by its token is counted
// under in Stats.Refused.
func authRefusal(o wssafe.Observation) string {
	switch {
	case o.Kind == wssafe.Panicked:
		return wssafe.EventPanic
	case o.Reason == "forbidden":
		return wssafe.EventAuthForbidden
	}
	return wssafe.EventAuthFailed
}

// newMetrics builds the histograms' attribute options.
func newMetrics() *Metrics {
	m := &Metrics{
		accepted:    recordWith(attribute.NewSet(keyHandshake.String("accepted"))),
		refused:     make(map[string][]metric.RecordOption, len(refusalReasons)+1),
		closed:      make(map[wssafe.StatusCode][]metric.RecordOption, len(closeStatuses)),
		closedOther: recordWith(closeAttrs(0)),
	}
	for r := range refusalReasons {
		m.refused[r] = recordWith(refusedAttrs(r))
	}
	m.refused[other] = recordWith(refusedAttrs(other))
	for c := range closeStatuses {
		m.closed[c] = recordWith(closeAttrs(c))
	}
	return m
}

func recordWith(set attribute.Set) []metric.RecordOption {
	return []metric.RecordOption{metric.WithAttributeSet(set)}
}

func (m *Metrics) closeOption(code wssafe.StatusCode) []metric.RecordOption {
	if opt, ok := m.closed[code]; ok {
		return opt
	}
	return m.closedOther
}

// Attach makes the counters and gauges report ep's Stats, read at each
// collection: nothing is done per message. Attach several Endpoints to
// one Metrics to report their sums. An Endpoint is reported from Attach
// on, for as long as the Metrics lives.
func (m *Metrics) Attach(ep *wssafe.Endpoint) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !slices.Contains(m.endpoints, ep) {
		m.endpoints = append(m.endpoints, ep)
	}
}

// collect is the callback of every observable instrument.
func (m *Metrics) collect(_ context.Context, o metric.Observer) error {
	m.mu.Lock()
	eps := slices.Clone(m.endpoints)
	m.mu.Unlock()
	if len(eps) == 0 {
		return nil
	}
	var t totals
	for _, ep := range eps {
		t.add(ep.Stats())
	}
	m.obs.observe(o, &t)
	return nil
}
