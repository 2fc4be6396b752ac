package wsotel_test

import (
	"context"
	"errors"
	"testing"

	"github.com/wssafe/wssafe"
)

// Reasons and close codes outside their fixed sets are reported as
// "other": whatever a client, an application or a backplane puts there,
// the number of series stays fixed.
func TestOddValuesAreBounded(t *testing.T) {
	e := newEnv(t, &wssafe.Options{})
	ctx := testContext(t)
	for _, code := range []wssafe.StatusCode{4000, 4999, 2000, 1004, 1015, 3001, 0, -1} {
		e.m.Observe(wssafe.Observation{Kind: wssafe.SessionClosed, Code: code})
	}
	for _, reason := range []string{"", "/chat?token=eyJhbGciOi", "203.0.113.7", "ip_denied "} {
		e.m.Observe(wssafe.Observation{Kind: wssafe.HandshakeRefused, Reason: reason})
	}
	e.m.Observe(wssafe.Observation{Kind: wssafe.SessionClosed, Code: wssafe.StatusTimeout})

	got, _ := e.collect(ctx)
	for k, want := range map[string]int64{
		"wssafe.server.session.duration{wssafe.close.code=other,wssafe.close.status=other} count":  8,
		"wssafe.server.session.duration{wssafe.close.code=3008,wssafe.close.status=timeout} count": 1,
		"wssafe.server.handshake.duration{error.type=other,wssafe.handshake.status=refused} count": 4,
	} {
		if got[k] != want {
			t.Errorf("%s = %d, want %d", k, got[k], want)
		}
	}
	for k := range got {
		if len(k) > 120 {
			t.Errorf("a long series name: %s", k)
		}
	}
}

// fakeBackplane is a Backplane of one node whose test counts through its
// Node what a real one would.
type fakeBackplane struct{ node chan *wssafe.Node }

func (b *fakeBackplane) NodeID() string { return "node-a" }
func (b *fakeBackplane) Start(n *wssafe.Node) error {
	b.node <- n
	return nil
}
func (b *fakeBackplane) Stop(context.Context) error       { return nil }
func (b *fakeBackplane) Subscribe(string)                 {}
func (b *fakeBackplane) Unsubscribe(string)               {}
func (b *fakeBackplane) Publish(wssafe.Publication) error { return nil }
func (b *fakeBackplane) Control(wssafe.ControlOp) error   { return nil }
func (b *fakeBackplane) Acquire(context.Context, string, int) (bool, error) {
	return true, nil
}
func (b *fakeBackplane) Release(string)                                 {}
func (b *fakeBackplane) Online(context.Context) (map[string]int, error) { return nil, nil }

// The backplane's counters, with its drop and refusal reasons bounded.
func TestBackplane(t *testing.T) {
	bp := &fakeBackplane{node: make(chan *wssafe.Node, 1)}
	e := newEnv(t, &wssafe.Options{Backplane: bp})
	ctx := testContext(t)
	n := <-bp.node
	n.SetUp(true, nil)
	n.SetUp(false, errors.New("connection refused"))
	n.SetUp(true, nil)
	for range 3 {
		n.Count(wssafe.BackplanePublished, "")
	}
	n.Count(wssafe.BackplaneDropped, "queue_full")
	n.Count(wssafe.BackplaneDropped, "topic room-42 is full")
	n.Count(wssafe.BackplaneRefused, "bad_mac")
	n.Count(wssafe.BackplaneRefused, "bad_mac")
	n.Count(wssafe.BackplaneRefused, "from 198.51.100.9")
	n.Deliver(wssafe.Publication{Topic: "room", Type: wssafe.MessageText, Data: []byte("x")})

	got, _ := e.collect(ctx)
	for k, want := range map[string]int64{
		"wssafe.backplane.up{}":                           1,
		"wssafe.backplane.outages{}":                      1,
		"wssafe.backplane.published{}":                    3,
		"wssafe.backplane.received{}":                     1,
		"wssafe.backplane.dropped{error.type=queue_full}": 1,
		"wssafe.backplane.dropped{error.type=other}":      1,
		"wssafe.backplane.refused{error.type=bad_mac}":    2,
		"wssafe.backplane.refused{error.type=other}":      1,
	} {
		if v, ok := got[k]; !ok || v != want {
			t.Errorf("%s = %d (reported: %v), want %d", k, v, ok, want)
		}
	}
	if len(got) != 20 { // those and the 12 points of an idle endpoint
		t.Errorf("%d points, want 20: %v", len(got), got)
	}
}
