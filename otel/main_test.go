package wsotel_test

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain fails the run if a test leaves a goroutine behind.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(5 * time.Second)
		for {
			leaked := interestingGoroutines()
			if leaked == "" {
				break
			}
			if time.Now().After(deadline) {
				fmt.Fprintf(os.Stderr, "goroutines left behind:\n%s\n", leaked)
				code = 1
				break
			}
			time.Sleep(20 * time.Millisecond) // polling the runtime; there is no event to wait on
		}
	}
	os.Exit(code)
}

func interestingGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		switch {
		case g == "",
			strings.Contains(g, "testing.(*M).Run"),
			strings.Contains(g, "testing.Main("),
			strings.Contains(g, "interestingGoroutines"),
			strings.Contains(g, "signal.signal_recv"),
			strings.Contains(g, "os/signal.loop"),
			strings.Contains(g, "runtime.ensureSigM"),
			strings.Contains(g, "testing.tRunner.func1"):
			continue
		}
		out = append(out, g)
	}
	return strings.Join(out, "\n\n")
}
