package wssafe

import (
	"context"
	"net/netip"
	"testing"
)

// BenchmarkDispatch is the per-message chain alone (chain.go dispatch)
// with a handler that does nothing, on the real clock: what an Observer
// that does nothing adds to a message ("observer" against "plain"), with
// a message limit, whose clock reading the Observer's timing shares, and
// without.
func BenchmarkDispatch(b *testing.B) {
	nop := HandlerFunc(func(context.Context, *Session, Message) error { return nil })
	for _, limit := range []struct {
		name string
		rate Rate
	}{{"unlimited", Rate{}}, {"limited", Rate{PerSecond: 1e9, Burst: 1e9}}} {
		for _, obs := range []struct {
			name string
			f    func(Observation)
		}{{"plain", nil}, {"observer", func(Observation) {}}} {
			b.Run(limit.name+"/"+obs.name, func(b *testing.B) {
				ep, err := newEndpoint(nop, &Options{MessageRate: limit.rate, Observer: obs.f}, hooks{})
				if err != nil {
					b.Fatal(err)
				}
				s := &Session{ep: ep, ctx: context.Background(), ip: netip.MustParseAddr("192.0.2.1"), limits: ep.newLimits()}
				m := Message{Type: MessageText, Data: make([]byte, 64)}
				b.ReportAllocs()
				for b.Loop() {
					if err := s.dispatch(m); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
