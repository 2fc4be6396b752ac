// Package leakcheck fails a test binary whose tests leave goroutines
// behind. Every module's TestMain calls Main.
package leakcheck

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Main runs m's tests and, when they pass, waits up to 5 s for every
// goroutine to end except the test runtime's own and those that one of
// ignore accepts (given the goroutine's stack). It exits with m's code, or
// with 1 and the stacks of the goroutines left behind.
func Main(m *testing.M, ignore ...func(stack string) bool) {
	code := m.Run()
	if code == 0 {
		if left := wait(5*time.Second, ignore); left != "" {
			fmt.Fprintf(os.Stderr, "goroutines left behind:\n%s\n", left)
			code = 1
		}
	}
	os.Exit(code)
}

// Containing ignores the goroutines whose stack contains s.
func Containing(s string) func(stack string) bool {
	return func(stack string) bool { return strings.Contains(stack, s) }
}

// wait returns the stacks of the goroutines still running after d, or "".
func wait(d time.Duration, ignore []func(string) bool) string {
	deadline := time.Now().Add(d)
	for {
		left := leftovers(ignore)
		if left == "" || time.Now().After(deadline) {
			return left
		}
		time.Sleep(20 * time.Millisecond) // polling the runtime; there is no event to wait on
	}
}

// own are the test runtime's goroutines, and this package's.
var own = []string{
	"testing.(*M).Run",
	"testing.Main(",
	"leakcheck.leftovers",
	"signal.signal_recv",
	"os/signal.loop",
	"runtime.ensureSigM",
	"testing.tRunner.func1",
}

func leftovers(ignore []func(string) bool) string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
next:
	for _, g := range strings.Split(string(buf), "\n\n") {
		if g == "" {
			continue
		}
		for _, s := range own {
			if strings.Contains(g, s) {
				continue next
			}
		}
		for _, f := range ignore {
			if f(g) {
				continue next
			}
		}
		out = append(out, g)
	}
	return strings.Join(out, "\n\n")
}
