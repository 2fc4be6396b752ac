package leakcheck

import (
	"strings"
	"testing"
	"time"
)

func parked(stop chan struct{}) { <-stop }

// A goroutine left running is reported, with its stack, until an ignore
// accepts it or it ends.
func TestLeftovers(t *testing.T) {
	stop := make(chan struct{})
	go parked(stop)
	if left := wait(time.Second, nil); !strings.Contains(left, "leakcheck.parked") {
		t.Fatalf("a parked goroutine was not reported:\n%s", left)
	}
	if left := leftovers([]func(string) bool{Containing("leakcheck.parked")}); left != "" {
		t.Fatalf("an ignored goroutine was reported:\n%s", left)
	}
	close(stop)
	if left := wait(5*time.Second, nil); left != "" {
		t.Fatalf("nothing should be left once it ended:\n%s", left)
	}
}
