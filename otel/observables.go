package wsotel

// The counters and gauges, read from Endpoint.Stats at each collection.

import (
	"errors"

	"github.com/wssafe/wssafe"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// observables are the asynchronous instruments.
type observables struct {
	activeSessions, activeHandshakes      metric.Int64ObservableUpDownCounter
	handshakes, opened, closed, auths     metric.Int64ObservableCounter
	limits, invalid, panics, messages, io metric.Int64ObservableCounter
	suppressed, sendDropped               metric.Int64ObservableCounter
	bpUp                                  metric.Int64ObservableGauge
	bpOutages, bpPublished, bpReceived    metric.Int64ObservableCounter
	bpDropped, bpRefused                  metric.Int64ObservableCounter
}

func (ob *observables) create(meter metric.Meter) error {
	var errs []error
	counter := func(name, unit, desc string) metric.Int64ObservableCounter {
		c, err := meter.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	var err error
	ob.activeSessions, err = meter.Int64ObservableUpDownCounter("wssafe.server.active_sessions",
		metric.WithUnit("{session}"), metric.WithDescription("Sessions open now, including those not yet authenticated."))
	errs = append(errs, err)
	ob.activeHandshakes, err = meter.Int64ObservableUpDownCounter("wssafe.server.active_handshakes",
		metric.WithUnit("{handshake}"), metric.WithDescription("Upgrade requests being served now."))
	errs = append(errs, err)
	ob.handshakes = counter("wssafe.server.handshakes", "{handshake}", "WebSocket handshakes, accepted or refused (error.type: why).")
	ob.opened = counter("wssafe.server.opened_sessions", "{session}", "Sessions admitted (authenticated, when the endpoint authenticates).")
	ob.closed = counter("wssafe.server.closed_sessions", "{session}", "Sessions ended, by close code.")
	ob.auths = counter("wssafe.server.authentications", "{authentication}", "Token verifications, succeeded or failed (error.type: why).")
	ob.limits = counter("wssafe.server.limit_hits", "{hit}", "Limits that closed a session or refused its message, by limit.")
	ob.invalid = counter("wssafe.server.invalid_messages", "{message}", "Received messages refused as invalid, by error.type.")
	ob.panics = counter("wssafe.server.panics", "{panic}", "Panics recovered in the handler or in Authorize.")
	ob.messages = counter("wssafe.server.messages", "{message}", "Data messages received and sent.")
	ob.io = counter("wssafe.server.io", "By", "Payload bytes of the data messages received and sent.")
	ob.sendDropped = counter("wssafe.server.dropped_messages", "{message}", "Queued messages never written: their session ended first (a slow consumer's backlog included) or the write failed.")
	ob.suppressed = counter("wssafe.server.suppressed_log_records", "{record}", "Security log records dropped by the log rate limit.")
	ob.bpUp, err = meter.Int64ObservableGauge("wssafe.backplane.up",
		metric.WithUnit("{link}"), metric.WithDescription("1 while the backplane is connected to its broker, else 0 (summed over the attached endpoints)."))
	errs = append(errs, err)
	ob.bpOutages = counter("wssafe.backplane.outages", "{outage}", "Times the backplane's link went down.")
	ob.bpPublished = counter("wssafe.backplane.published", "{message}", "Publications and control operations sent to the other nodes.")
	ob.bpReceived = counter("wssafe.backplane.received", "{message}", "Publications and control operations received from the other nodes.")
	ob.bpDropped = counter("wssafe.backplane.dropped", "{message}", "Publications not sent to the other nodes, by error.type.")
	ob.bpRefused = counter("wssafe.backplane.refused", "{message}", "Envelopes from the broker refused (forged, replayed, malformed), by error.type.")
	return errors.Join(errs...)
}

func (ob *observables) all() []metric.Observable {
	return []metric.Observable{ob.activeSessions, ob.activeHandshakes, ob.handshakes, ob.opened, ob.closed, ob.auths,
		ob.limits, ob.invalid, ob.panics, ob.messages, ob.io, ob.sendDropped, ob.suppressed,
		ob.bpUp, ob.bpOutages, ob.bpPublished, ob.bpReceived, ob.bpDropped, ob.bpRefused}
}

// totals is the sum of the attached Endpoints' Stats, with every reason
// and code already bounded.
type totals struct {
	active, handshaking                          int64
	accepted, opened, authOK, panics, suppressed uint64
	sendDropped                                  uint64
	refused, authFailed, limits, invalid         map[string]uint64
	closed                                       map[wssafe.StatusCode]uint64 // unknown codes under 0
	traffic                                      wssafe.Traffic

	backplane                        bool
	up, outages, published, received uint64
	dropped, bpRefused               map[string]uint64
}

func (t *totals) add(st wssafe.Stats) {
	t.active += int64(st.Active)
	t.handshaking += int64(st.Handshaking)
	t.sendDropped += st.SendDropped
	t.accepted += st.Accepted
	t.opened += st.Opened
	t.authOK += st.AuthSucceeded
	t.panics += st.Panics
	t.suppressed += st.LogsSuppressed
	addBounded(&t.refused, refusalReasons, st.Refused)
	addBounded(&t.authFailed, authReasons, st.AuthFailed)
	addBounded(&t.limits, limitReasons, st.LimitHits)
	addBounded(&t.invalid, validationReasons, st.ValidationFailures)
	if t.closed == nil {
		t.closed = make(map[wssafe.StatusCode]uint64)
	}
	for code, n := range st.Closed {
		if _, ok := closeStatuses[code]; !ok {
			code = 0
		}
		t.closed[code] += n
	}
	t.traffic.MessagesIn += st.Traffic.MessagesIn
	t.traffic.BytesIn += st.Traffic.BytesIn
	t.traffic.MessagesOut += st.Traffic.MessagesOut
	t.traffic.BytesOut += st.Traffic.BytesOut
	if bp := st.Backplane; bp != nil {
		t.backplane = true
		if bp.Up {
			t.up++
		}
		t.outages += bp.Outages
		t.published += bp.Published
		t.received += bp.Received
		addBounded(&t.dropped, droppedReasons, bp.Dropped)
		addBounded(&t.bpRefused, refusedReasons, bp.Refused)
	}
}

// addBounded adds src to *dst under bounded keys.
func addBounded(dst *map[string]uint64, known map[string]bool, src map[string]uint64) {
	if *dst == nil {
		*dst = make(map[string]uint64)
	}
	for k, n := range src {
		(*dst)[bound(known, k)] += n
	}
}

// Direction attributes, after OpenTelemetry's network.io.direction.
var (
	received    = metric.WithAttributeSet(attribute.NewSet(keyDirection.String("receive")))
	transmitted = metric.WithAttributeSet(attribute.NewSet(keyDirection.String("transmit")))
)

func (ob *observables) observe(o metric.Observer, t *totals) {
	o.ObserveInt64(ob.activeSessions, t.active)
	o.ObserveInt64(ob.activeHandshakes, t.handshaking)
	o.ObserveInt64(ob.handshakes, int64(t.accepted), metric.WithAttributes(keyHandshake.String("accepted")))
	for r, n := range t.refused {
		o.ObserveInt64(ob.handshakes, int64(n), metric.WithAttributeSet(refusedAttrs(r)))
	}
	o.ObserveInt64(ob.opened, int64(t.opened))
	for code, n := range t.closed {
		o.ObserveInt64(ob.closed, int64(n), metric.WithAttributeSet(closeAttrs(code)))
	}
	o.ObserveInt64(ob.auths, int64(t.authOK), metric.WithAttributes(keyAuth.String("succeeded")))
	for r, n := range t.authFailed {
		o.ObserveInt64(ob.auths, int64(n), metric.WithAttributes(keyAuth.String("failed"), keyErrorType.String(r)))
	}
	for r, n := range t.limits {
		o.ObserveInt64(ob.limits, int64(n), metric.WithAttributes(keyLimit.String(r)))
	}
	for r, n := range t.invalid {
		o.ObserveInt64(ob.invalid, int64(n), metric.WithAttributes(keyErrorType.String(r)))
	}
	o.ObserveInt64(ob.panics, int64(t.panics))
	o.ObserveInt64(ob.messages, t.traffic.MessagesIn, received)
	o.ObserveInt64(ob.messages, t.traffic.MessagesOut, transmitted)
	o.ObserveInt64(ob.io, t.traffic.BytesIn, received)
	o.ObserveInt64(ob.io, t.traffic.BytesOut, transmitted)
	o.ObserveInt64(ob.sendDropped, int64(t.sendDropped))
	o.ObserveInt64(ob.suppressed, int64(t.suppressed))
	if !t.backplane {
		return
	}
	o.ObserveInt64(ob.bpUp, int64(t.up))
	o.ObserveInt64(ob.bpOutages, int64(t.outages))
	o.ObserveInt64(ob.bpPublished, int64(t.published))
	o.ObserveInt64(ob.bpReceived, int64(t.received))
	for r, n := range t.dropped {
		o.ObserveInt64(ob.bpDropped, int64(n), metric.WithAttributes(keyErrorType.String(r)))
	}
	for r, n := range t.bpRefused {
		o.ObserveInt64(ob.bpRefused, int64(n), metric.WithAttributes(keyErrorType.String(r)))
	}
}
