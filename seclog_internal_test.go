package wssafe

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// The log budget is per event and global, and the global one never hides
// an event's first line: a flood of twenty events from 300 sources each
// spends the global budget, and a twenty-first event still gets its line;
// the total stays within the global budget plus one line per event.
func TestLogLimiterBudgets(t *testing.T) {
	clock := NewFakeClock(time.Unix(1_700_000_000, 0)) // stopped
	now := clock.Now()
	l := newLogLimiter(&config{Options: Options{SecurityLogInterval: time.Second}, clock: clock, maxSources: defaultMaxSources})
	written := map[string]int{}
	total := 0
	for e := range 20 {
		event := fmt.Sprintf("flood_%d", e)
		for i := range 300 {
			ip := netip.AddrFrom4([4]byte{10, byte(e), byte(i / 256), byte(i)})
			if _, ok := l.allow(ip, event, nil); ok {
				written[event]++
				total++
			}
		}
	}
	for event, n := range written {
		if n > maxEventLogRate {
			t.Errorf("%s: %d lines, more than its budget of %d", event, n, maxEventLogRate)
		}
	}
	if total > maxLogRate+20 {
		t.Errorf("%d lines in all, more than %d + one per event", total, maxLogRate)
	}
	if l.global.TokensAt(now) >= 1 {
		t.Fatalf("the flood did not spend the global budget (%d lines)", total)
	}
	if _, ok := l.allow(netip.MustParseAddr("192.0.2.1"), "other", nil); !ok {
		t.Error("the first line of another event was suppressed")
	}
	if _, ok := l.allow(netip.MustParseAddr("192.0.2.2"), "other", nil); ok {
		t.Error("a second line of that event passed the spent global budget")
	}
	if got, want := l.suppressedTotal(), uint64(20*300-total+1); got != want {
		t.Errorf("suppressed %d, want %d", got, want)
	}

	// A second later every budget has refilled: a source whose line was
	// suppressed gets one, with the count.
	clock.Advance(time.Second)
	attrs, ok := l.allow(netip.AddrFrom4([4]byte{10, 0, 1, 43}), "flood_0", nil)
	if !ok {
		t.Fatal("a second later, the source's next line was suppressed")
	}
	if len(attrs) != 1 || attrs[0].Key != "suppressed" {
		t.Errorf("attrs %v, want the suppressed count", attrs)
	}
}
