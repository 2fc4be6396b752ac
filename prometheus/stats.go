package wsprom

// The metrics read from Stats at scrape time, and the fixed sets their
// label values come from.

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/wssafe/wssafe"
)

// other is the label value of anything outside a label's fixed set.
const other = "other"

// set is a label's fixed set of values.
type set map[string]bool

func newSet(vs ...string) set {
	s := make(set, len(vs))
	for _, v := range vs {
		s[v] = true
	}
	return s
}

// label returns v when it is in s, else "other".
func (s set) label(v string) string {
	if s[v] {
		return v
	}
	return other
}

// The label sets: the core's event names and authentication reasons, and
// the reasons of the Redis backplane (github.com/wssafe/wssafe/redis).
var (
	refusedReasons = newSet(wssafe.EventIPDenied, wssafe.EventOriginRefused, wssafe.EventHandshakeRate,
		wssafe.EventIPConnLimit, wssafe.EventSubjectConnLimit, wssafe.EventAtCapacity, wssafe.EventHandshakeFailed,
		wssafe.EventRequestBody, wssafe.EventHostRefused, wssafe.EventTLSRequired, wssafe.EventClusterUnavailable,
		wssafe.EventShuttingDown, wssafe.EventAuthFailed, wssafe.EventAuthForbidden, wssafe.EventPanic)
	authReasons = newSet("missing", "malformed", "expired", "not_yet_valid", "issued_in_future", "issuer",
		"audience", "missing_claim", "invalid_claim", "claims", "unknown_key", "keys_unavailable", "signature",
		"alg_none", "alg_not_allowed", "crit", "key_in_header", "typ", "lifetime", "query_token", "revoked",
		"too_large", "forbidden", "panic", "subject_changed")
	limitReasons = newSet(wssafe.EventMessageTooBig, wssafe.EventMessageTimeout, wssafe.EventPingFlood,
		wssafe.EventPongFlood, wssafe.EventMessageRate, wssafe.EventSubjectRate, wssafe.EventByteRate,
		wssafe.EventSlowConsumer, wssafe.EventInflationRatio)
	invalidReasons   = newSet(wssafe.EventInvalidUTF8, wssafe.EventUnsupportedType, wssafe.EventInvalidMessage, wssafe.EventInvalidCompressed)
	bpDroppedReasons = newSet("down", "queue_full", "write_failed", "stopping", "controls_full")
	bpRefusedReasons = newSet("malformed", "unknown_key", "bad_mac", "stale", "replay", "too_many_peers", "bad_record")
)

// The direction label's values.
const (
	dirReceived = "received"
	dirSent     = "sent"
)

// descs are the descriptors of the metrics read from Stats.
type descs struct {
	active, handshaking                        *prometheus.Desc
	accepted, refused, opened, closed          *prometheus.Desc
	messages, bytes                            *prometheus.Desc
	authOK, authFailed                         *prometheus.Desc
	limits, invalid, panics                    *prometheus.Desc
	sendDropped, slowConsumers, logsSuppressed *prometheus.Desc
	bpUp, bpOutages, bpPublished, bpReceived   *prometheus.Desc
	bpDropped, bpRefused                       *prometheus.Desc
}

func newDescs(cl prometheus.Labels) descs {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, cl)
	}
	return descs{
		active:         d("wssafe_sessions_active", "Live sessions, including those not yet authenticated."),
		handshaking:    d("wssafe_handshakes_in_progress", "Upgrade requests being served."),
		accepted:       d("wssafe_handshakes_accepted_total", "Handshakes accepted."),
		refused:        d("wssafe_handshakes_refused_total", "Handshakes refused, by reason (a wssafe event name).", "reason"),
		opened:         d("wssafe_sessions_opened_total", "Sessions admitted (authenticated, under the per-subject cap)."),
		closed:         d("wssafe_sessions_closed_total", "Sessions ended, by WebSocket close code (other: a code outside RFC 6455's and wssafe's).", "code"),
		messages:       d("wssafe_messages_total", "Data messages received from and sent to peers.", "direction"),
		bytes:          d("wssafe_message_bytes_total", "Payload bytes of the data messages received and sent.", "direction"),
		authOK:         d("wssafe_auth_succeeded_total", "Tokens accepted."),
		authFailed:     d("wssafe_auth_failures_total", "Tokens refused, at the handshake or later, by reason.", "reason"),
		limits:         d("wssafe_limit_hits_total", "Sessions cut by a limit, by limit.", "limit"),
		invalid:        d("wssafe_invalid_messages_total", "Messages refused by validation, by reason.", "reason"),
		panics:         d("wssafe_panics_total", "Panics recovered in the handler or in Authorize."),
		sendDropped:    d("wssafe_send_queue_dropped_total", "Queued messages never written: their session ended or the write failed."),
		slowConsumers:  d("wssafe_slow_consumer_cuts_total", "Sessions cut because their send queue was full (also in wssafe_limit_hits_total)."),
		logsSuppressed: d("wssafe_log_lines_suppressed_total", "Security log lines dropped by the log rate limit."),
		bpUp:           d("wssafe_backplane_up", "1 while the cluster backplane is connected."),
		bpOutages:      d("wssafe_backplane_outages_total", "Times the backplane link went down."),
		bpPublished:    d("wssafe_backplane_published_total", "Publications and control operations sent to the other nodes."),
		bpReceived:     d("wssafe_backplane_received_total", "Publications and control operations received from the other nodes."),
		bpDropped:      d("wssafe_backplane_dropped_total", "Publications not sent to the other nodes, by reason.", "reason"),
		bpRefused:      d("wssafe_backplane_refused_total", "Envelopes from the backplane refused, by reason.", "reason"),
	}
}

func (d *descs) all() []*prometheus.Desc {
	return []*prometheus.Desc{d.active, d.handshaking, d.accepted, d.refused, d.opened, d.closed,
		d.messages, d.bytes, d.authOK, d.authFailed, d.limits, d.invalid, d.panics,
		d.sendDropped, d.slowConsumers, d.logsSuppressed,
		d.bpUp, d.bpOutages, d.bpPublished, d.bpReceived, d.bpDropped, d.bpRefused}
}

// collect sends st as const metrics.
func (d *descs) collect(ch chan<- prometheus.Metric, st wssafe.Stats) {
	gauge := func(desc *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v)
	}
	counter := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, v, labels...)
	}
	gauge(d.active, float64(st.Active))
	gauge(d.handshaking, float64(st.Handshaking))
	counter(d.accepted, float64(st.Accepted))
	byLabel(d.refused, st.Refused, refusedReasons.label, counter)
	counter(d.opened, float64(st.Opened))
	byLabel(d.closed, st.Closed, codeLabel, counter)
	counter(d.messages, float64(st.Traffic.MessagesIn), dirReceived)
	counter(d.messages, float64(st.Traffic.MessagesOut), dirSent)
	counter(d.bytes, float64(st.Traffic.BytesIn), dirReceived)
	counter(d.bytes, float64(st.Traffic.BytesOut), dirSent)
	counter(d.authOK, float64(st.AuthSucceeded))
	byLabel(d.authFailed, st.AuthFailed, authReasons.label, counter)
	byLabel(d.limits, st.LimitHits, limitReasons.label, counter)
	byLabel(d.invalid, st.ValidationFailures, invalidReasons.label, counter)
	counter(d.panics, float64(st.Panics))
	counter(d.sendDropped, float64(st.SendDropped))
	counter(d.slowConsumers, float64(st.LimitHits[wssafe.EventSlowConsumer]))
	counter(d.logsSuppressed, float64(st.LogsSuppressed))
	if bp := st.Backplane; bp != nil {
		up := 0.0
		if bp.Up {
			up = 1
		}
		gauge(d.bpUp, up)
		counter(d.bpOutages, float64(bp.Outages))
		counter(d.bpPublished, float64(bp.Published))
		counter(d.bpReceived, float64(bp.Received))
		byLabel(d.bpDropped, bp.Dropped, bpDroppedReasons.label, counter)
		byLabel(d.bpRefused, bp.Refused, bpRefusedReasons.label, counter)
	}
}

// byLabel sends the counts of m under their label values, summing those
// that map to the same value (every unknown one to "other").
func byLabel[K comparable](desc *prometheus.Desc, m map[K]uint64, label func(K) string,
	counter func(*prometheus.Desc, float64, ...string)) {
	sums := make(map[string]uint64, len(m))
	for k, n := range m {
		sums[label(k)] += n
	}
	for v, n := range sums {
		counter(desc, float64(n), v)
	}
}
