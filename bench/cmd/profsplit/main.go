// Command profsplit splits a CPU profile of one server loop into whose work
// each sample was, in nanoseconds per message: it reads the output of
// `go tool pprof -traces` on standard input and prints a table.
//
//	go tool pprof -traces bench.test cpu.prof | go run ./cmd/profsplit -n 2000000
//
// A sample belongs to the deepest frame of its stack that names an owner
// (coder's read path, coder's write path, wssafe, wssafe's connection
// wrapper, the socket); within that owner, the mechanism is the first
// recognised frame from the leaf up (coder's channel locks, other
// select/channel operations, bufio, frame headers, unmasking, UTF-8, ...),
// else the owner's deepest function.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

var owners = []struct {
	name string
	re   *regexp.Regexp
}{
	{"socket: syscalls (scriptConn in-process)", regexp.MustCompile(`bench_test\.\(\*scriptConn\)|^syscall\.|^internal/poll\.`)},
	{"wssafe conn wrapper", regexp.MustCompile(`wssafe/wssafe\.\(\*deadlineConn\)|wssafe/wssafe\.\(\*frameScan\)`)},
	{"coder write", regexp.MustCompile(`coder/websocket\.\(\*Conn\)\.(Write|write|writeFrame|writeFramePayload|writeControl)|coder/websocket\.\(\*msgWriter\)|coder/websocket\.writeFrameHeader`)},
	{"coder read", regexp.MustCompile(`coder/websocket\.\(\*Conn\)\.(Reader|reader|readLoop|readFrameHeader|readFramePayload|prepareRead|handleControl|finishRead)|coder/websocket\.\(\*(msgReader|limitReader)\)|coder/websocket\.readFrameHeader|coder/websocket/internal/util\.ReaderFunc`)},
	{"prototype read", regexp.MustCompile(`bench/internal/rawread\.`)},
	{"gorilla", regexp.MustCompile(`gorilla/websocket\.`)},
	{"gws", regexp.MustCompile(`lxzan/gws\.`)},
	{"wssafe", regexp.MustCompile(`^github\.com/wssafe/wssafe\.`)},
	{"echo handler", regexp.MustCompile(`wssafe/bench/peers\.`)},
}

var mechanisms = []struct {
	name string
	re   *regexp.Regexp
}{
	{"channel locks (mu: select + select-recv)", regexp.MustCompile(`coder/websocket\.\(\*mu\)\.`)},
	{"unmask", regexp.MustCompile(`coder/websocket\.(mask|maskGo|maskAsm)|rawread\.mask`)},
	{"frame header", regexp.MustCompile(`[Ff]rameHeader|rawread\.\(\*Reader\)\.header`)},
	{"bufio", regexp.MustCompile(`^bufio\.`)},
	{"UTF-8", regexp.MustCompile(`^unicode/utf8\.|wssafe\.fullRunes`)},
	{"clock read", regexp.MustCompile(`^time\.(Since|Now|runtimeNano)|wssafe\.\(\*realClock\)`)},
	{"select/chan (non-blocking checks)", regexp.MustCompile(`^runtime\.(select|chanrecv|chansend|sel)`)},
	{"errors.Is", regexp.MustCompile(`^errors\.`)},
	{"context", regexp.MustCompile(`^context\.`)},
	{"defer/recover", regexp.MustCompile(`^runtime\.(deferreturn|popDefer|.*_panic|gorecover)`)},
	{"memmove/memclr", regexp.MustCompile(`^runtime\.(memmove|memclr)`)},
}

func main() {
	n := flag.Float64("n", 1, "messages the profile covers")
	flag.Parse()
	split := map[[2]string]time.Duration{}
	var total time.Duration
	var stack []string
	var d time.Duration
	flush := func() {
		if len(stack) > 0 {
			k := classify(stack)
			split[k] += d
			total += d
		}
		stack, d = nil, 0
	}
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	in := false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "-----------+") {
			flush()
			in = true
			continue
		}
		if !in || strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Fields(line)
		if len(stack) == 0 && len(f) >= 2 {
			if v, err := time.ParseDuration(f[0]); err == nil {
				d = v
				f = f[1:]
			}
		}
		stack = append(stack, f[0]) // leaf first
	}
	flush()
	keys := make([][2]string, 0, len(split))
	byOwner := map[string]time.Duration{}
	for k, v := range split {
		keys = append(keys, k)
		byOwner[k[0]] += v
	}
	sort.Slice(keys, func(i, j int) bool {
		if byOwner[keys[i][0]] != byOwner[keys[j][0]] {
			return byOwner[keys[i][0]] > byOwner[keys[j][0]]
		}
		if keys[i][0] != keys[j][0] {
			return keys[i][0] < keys[j][0]
		}
		return split[keys[i]] > split[keys[j]]
	})
	ns := func(v time.Duration) string { return strconv.FormatFloat(float64(v) / *n, 'f', 0, 64) }
	fmt.Printf("total %s ns/msg (%v of samples over %.0f messages)\n", ns(total), total, *n)
	last := ""
	for _, k := range keys {
		if k[0] != last {
			fmt.Printf("%-24s %6s ns  %4.1f%%\n", k[0], ns(byOwner[k[0]]), 100*float64(byOwner[k[0]])/float64(total))
			last = k[0]
		}
		fmt.Printf("    %-52s %6s ns\n", k[1], ns(split[k]))
	}
}

// classify returns a sample's owner and mechanism; stack is leaf first.
func classify(stack []string) [2]string {
	owner, at := "runtime (GC, scheduler)", len(stack)
	for i := len(stack) - 1; i >= 0; i-- { // root to leaf: the deepest owner wins
		for _, o := range owners {
			if o.re.MatchString(stack[i]) {
				owner, at = o.name, i
				break
			}
		}
	}
	for i := 0; i < at && i < len(stack); i++ { // leaf up to the owner's frame
		for _, m := range mechanisms {
			if m.re.MatchString(stack[i]) {
				// A lock's select is the lock's.
				for j := i; j < at; j++ {
					if mechanisms[0].re.MatchString(stack[j]) {
						return [2]string{owner, mechanisms[0].name}
					}
				}
				return [2]string{owner, m.name}
			}
		}
	}
	if at < len(stack) {
		name := stack[at]
		if k := strings.LastIndex(name, "/"); k >= 0 {
			name = name[k+1:]
		}
		return [2]string{owner, name + " (own code)"}
	}
	return [2]string{owner, stack[0]}
}
