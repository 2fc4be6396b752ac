// Package wsprom exports a wssafe Endpoint's metrics to Prometheus.
//
// A [Metrics] is a [prometheus.Collector]: at each scrape it reads the
// endpoint's [wssafe.Endpoint.Stats] (its counters, as const metrics, cost
// nothing per message), and it draws the histograms only an Observer can
// see (session, handler and handshake durations, message sizes) from the
// Observations it is given:
//
//	m := wsprom.New(wsprom.Options{})
//	opts.Observer = wssafe.Observers(m.Observe, myObserver) // beside yours, not instead
//	ep, err := wssafe.New(handler, opts)
//	...
//	m.Attach(ep)
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(m)
//	statsMux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// Nothing is registered implicitly, on the global registry or any other.
//
// # Labels
//
// Every label value comes from a fixed set: the reasons are wssafe's
// event names and authentication reasons, the close codes those the
// library and RFC 6455 define; any other value, such as a close code a
// peer chose, is counted under "other". No label ever holds a subject, an
// address, a session ID, a topic or a path, so the number of series is
// bounded whatever clients send. Several endpoints in one process take a
// Metrics each, told apart by a constant label the application chooses
// ([Options.ConstLabels], e.g. endpoint="chat").
package wsprom

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/wssafe/wssafe"
)

// Options configures a [Metrics]. The zero Options are the defaults.
type Options struct {
	// ConstLabels are added to every metric, e.g. {"endpoint": "chat"} to
	// tell several endpoints apart. They must be fixed values chosen by
	// the application, never taken from a request. Nil adds none.
	ConstLabels prometheus.Labels

	// The histograms' buckets, in seconds or bytes; nil means the
	// defaults below (DefaultSessionBuckets ...).
	SessionBuckets   []float64
	HandlerBuckets   []float64
	HandshakeBuckets []float64
	SizeBuckets      []float64
}

// The default buckets of the histograms.
var (
	// DefaultSessionBuckets: one second to a day.
	DefaultSessionBuckets = []float64{1, 5, 15, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600}
	// DefaultHandlerBuckets: 50 µs to 10 s; most handlers answer in microseconds.
	DefaultHandlerBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	// DefaultHandshakeBuckets: 100 µs to 10 s (a JWKS fetch or a slow
	// Authorize shows in the upper ones).
	DefaultHandshakeBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	// DefaultSizeBuckets: 64 bytes to 4 MiB, by fours.
	DefaultSizeBuckets = prometheus.ExponentialBuckets(64, 4, 9)
)

// Metrics is the Prometheus view of one Endpoint: a [prometheus.Collector]
// and, through [Metrics.Observe], a [wssafe.Options] Observer. Its methods
// are safe for concurrent use.
type Metrics struct {
	ep atomic.Pointer[wssafe.Endpoint]
	d  descs

	sessionDur   prometheus.Histogram
	handlerDur   prometheus.Histogram
	handshakeDur *prometheus.HistogramVec // outcome: accepted, refused
	accepted     prometheus.Observer
	refused      prometheus.Observer
	msgSize      prometheus.Histogram
}

// New returns the Metrics of one endpoint, to be given to it as (part of)
// its Observer, then attached to it with [Metrics.Attach] and registered
// on the application's registry.
func New(o Options) *Metrics {
	m := &Metrics{d: newDescs(o.ConstLabels)}
	hist := func(name, help string, def, b []float64) prometheus.HistogramOpts {
		if b == nil {
			b = def
		}
		return prometheus.HistogramOpts{Name: name, Help: help, Buckets: b, ConstLabels: o.ConstLabels}
	}
	m.sessionDur = prometheus.NewHistogram(hist("wssafe_session_duration_seconds",
		"Lifetime of the sessions that ended, from the handshake's acceptance to the close.", DefaultSessionBuckets, o.SessionBuckets))
	m.handlerDur = prometheus.NewHistogram(hist("wssafe_handler_duration_seconds",
		"Time a received message spent in the handler chain.", DefaultHandlerBuckets, o.HandlerBuckets))
	m.handshakeDur = prometheus.NewHistogramVec(hist("wssafe_handshake_duration_seconds",
		"Time from an upgrade request's arrival to its acceptance or refusal, by outcome.", DefaultHandshakeBuckets, o.HandshakeBuckets),
		[]string{"outcome"})
	m.accepted = m.handshakeDur.WithLabelValues("accepted")
	m.refused = m.handshakeDur.WithLabelValues("refused")
	m.msgSize = prometheus.NewHistogram(hist("wssafe_received_message_size_bytes",
		"Payload size of the messages that reached the handler chain.", DefaultSizeBuckets, o.SizeBuckets))
	return m
}

// Attach makes m read ep's Stats at each scrape. Call it once, with the
// endpoint m observes; until then m reports its histograms only.
func (m *Metrics) Attach(ep *wssafe.Endpoint) { m.ep.Store(ep) }

// Observe records o in the histograms; it is an Options.Observer. Combine
// it with the application's own through [wssafe.Observers].
func (m *Metrics) Observe(o wssafe.Observation) {
	switch o.Kind {
	case wssafe.MessageHandled:
		m.handlerDur.Observe(o.Duration.Seconds())
		m.msgSize.Observe(float64(o.Size))
	case wssafe.SessionClosed:
		m.sessionDur.Observe(o.Duration.Seconds())
	case wssafe.HandshakeAccepted:
		m.accepted.Observe(o.Duration.Seconds())
	case wssafe.HandshakeRefused, wssafe.AuthFailed, wssafe.Panicked:
		// With a Session, the handshake was accepted (and observed as
		// such) before this refusal or failure.
		if o.Session == nil {
			m.refused.Observe(o.Duration.Seconds())
		}
	}
}

// Describe implements [prometheus.Collector].
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range m.d.all() {
		ch <- d
	}
	m.sessionDur.Describe(ch)
	m.handlerDur.Describe(ch)
	m.handshakeDur.Describe(ch)
	m.msgSize.Describe(ch)
}

// Collect implements [prometheus.Collector]: the histograms, and the
// attached endpoint's Stats as they are now.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.sessionDur.Collect(ch)
	m.handlerDur.Collect(ch)
	m.handshakeDur.Collect(ch)
	m.msgSize.Collect(ch)
	if ep := m.ep.Load(); ep != nil {
		m.d.collect(ch, ep.Stats())
	}
}

// codeLabel is a close code's label value: the code in decimal when it is
// one RFC 6455 or wssafe defines, "other" for any other (a peer chooses
// the code it closes with).
func codeLabel(c wssafe.StatusCode) string {
	switch {
	case c >= 1000 && c <= 1015 && c != 1004, c == wssafe.StatusUnauthorized,
		c == wssafe.StatusForbidden, c == wssafe.StatusTimeout:
		return strconv.Itoa(int(c))
	}
	return other
}
