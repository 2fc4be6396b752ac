package wsprom

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/wssafe/wssafe"
)

// statsCollector collects a fixed Stats, as an attached endpoint would.
type statsCollector struct {
	d  descs
	st wssafe.Stats
}

func (c statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.d.all() {
		ch <- d
	}
}

func (c statsCollector) Collect(ch chan<- prometheus.Metric) { c.d.collect(ch, c.st) }

// No label value outside the fixed sets can appear: odd close codes and
// reasons, as a peer or a third-party Backplane could produce them, are
// summed under "other", and never reach a label.
func TestLabelValuesFromFixedSets(t *testing.T) {
	odd := "user@example.com 10.0.0.1 /chat?token=x" // what must never become a label
	st := wssafe.Stats{
		Refused:            map[string]uint64{wssafe.EventOriginRefused: 2, odd: 1, "brand_new_refusal": 1},
		Closed:             map[wssafe.StatusCode]uint64{1000: 1, 1004: 1, 1016: 1, 2999: 1, 3000: 1, 3001: 1, 4000: 1, 4999: 1, 65535: 1},
		AuthFailed:         map[string]uint64{"expired": 1, odd: 3},
		LimitHits:          map[string]uint64{wssafe.EventSlowConsumer: 1, odd: 1},
		ValidationFailures: map[string]uint64{odd: 1},
		Backplane: &wssafe.BackplaneStats{Node: odd, Up: true,
			Dropped: map[string]uint64{"down": 1, odd: 1}, Refused: map[string]uint64{"bad_mac": 1, odd: 2}},
	}
	c := statsCollector{d: newDescs(nil), st: st}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]set{
		"reason":    setUnion(refusedReasons, authReasons, invalidReasons, bpDroppedReasons, bpRefusedReasons),
		"limit":     limitReasons,
		"code":      newSet("1000", "1001", "1002", "1003", "1005", "1006", "1007", "1008", "1009", "1010", "1011", "1012", "1013", "1014", "1015", "3000", "3003", "3008"),
		"direction": newSet(dirReceived, dirSent),
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if v := l.GetValue(); v != other && !allowed[l.GetName()][v] {
					t.Errorf("%s{%s=%q}: not in the label's fixed set", mf.GetName(), l.GetName(), v)
				}
			}
		}
	}

	const want = `
# HELP wssafe_handshakes_refused_total Handshakes refused, by reason (a wssafe event name).
# TYPE wssafe_handshakes_refused_total counter
wssafe_handshakes_refused_total{reason="origin_refused"} 2
wssafe_handshakes_refused_total{reason="other"} 2
# HELP wssafe_sessions_closed_total Sessions ended, by WebSocket close code (other: a code outside RFC 6455's and wssafe's).
# TYPE wssafe_sessions_closed_total counter
wssafe_sessions_closed_total{code="1000"} 1
wssafe_sessions_closed_total{code="3000"} 1
wssafe_sessions_closed_total{code="other"} 7
# HELP wssafe_auth_failures_total Tokens refused, at the handshake or later, by reason.
# TYPE wssafe_auth_failures_total counter
wssafe_auth_failures_total{reason="expired"} 1
wssafe_auth_failures_total{reason="other"} 3
# HELP wssafe_limit_hits_total Sessions cut by a limit, by limit.
# TYPE wssafe_limit_hits_total counter
wssafe_limit_hits_total{limit="other"} 1
wssafe_limit_hits_total{limit="slow_consumer"} 1
# HELP wssafe_slow_consumer_cuts_total Sessions cut because their send queue was full (also in wssafe_limit_hits_total).
# TYPE wssafe_slow_consumer_cuts_total counter
wssafe_slow_consumer_cuts_total 1
# HELP wssafe_backplane_up 1 while the cluster backplane is connected.
# TYPE wssafe_backplane_up gauge
wssafe_backplane_up 1
# HELP wssafe_backplane_dropped_total Publications not sent to the other nodes, by reason.
# TYPE wssafe_backplane_dropped_total counter
wssafe_backplane_dropped_total{reason="down"} 1
wssafe_backplane_dropped_total{reason="other"} 1
# HELP wssafe_backplane_refused_total Envelopes from the backplane refused, by reason.
# TYPE wssafe_backplane_refused_total counter
wssafe_backplane_refused_total{reason="bad_mac"} 1
wssafe_backplane_refused_total{reason="other"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "wssafe_handshakes_refused_total",
		"wssafe_sessions_closed_total", "wssafe_auth_failures_total", "wssafe_limit_hits_total",
		"wssafe_slow_consumer_cuts_total", "wssafe_backplane_up", "wssafe_backplane_dropped_total",
		"wssafe_backplane_refused_total"); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

func setUnion(sets ...set) set {
	out := set{}
	for _, s := range sets {
		for v := range s {
			out[v] = true
		}
	}
	return out
}

// Every limit and validation event of the core has a label of its own:
// the compression ones too, not "other".
func TestEveryReadEventLabelled(t *testing.T) {
	st := wssafe.Stats{
		LimitHits:          map[string]uint64{wssafe.EventInflationRatio: 2, wssafe.EventMessageTooBig: 1},
		ValidationFailures: map[string]uint64{wssafe.EventInvalidCompressed: 3, wssafe.EventInvalidUTF8: 1},
	}
	const want = `
# HELP wssafe_invalid_messages_total Messages refused by validation, by reason.
# TYPE wssafe_invalid_messages_total counter
wssafe_invalid_messages_total{reason="invalid_compressed_data"} 3
wssafe_invalid_messages_total{reason="invalid_utf8"} 1
# HELP wssafe_limit_hits_total Sessions cut by a limit, by limit.
# TYPE wssafe_limit_hits_total counter
wssafe_limit_hits_total{limit="inflation_ratio_exceeded"} 2
wssafe_limit_hits_total{limit="message_too_big"} 1
`
	c := statsCollector{d: newDescs(nil), st: st}
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "wssafe_invalid_messages_total", "wssafe_limit_hits_total"); err != nil {
		t.Fatal(err)
	}
}
