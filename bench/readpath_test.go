package bench_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"runtime/metrics"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	gorilla "github.com/gorilla/websocket"
	"github.com/lxzan/gws"

	"github.com/wssafe/wssafe"
	"github.com/wssafe/wssafe/bench/internal/rawread"
	"github.com/wssafe/wssafe/bench/peers"
)

// BenchmarkReadPath compares reading frames through coder/websocket's
// read path with a minimal reader of our own (internal/rawread, a
// prototype the library does not use), gorilla's and gws's, in the same
// run: each b.N iteration is one round, in which every implementation, in
// a rotating order, reads the same number of client frames from its own
// gateConn (no kernel, like BenchmarkServerLoop), so that slow swings of
// the machine move all of a round alike. ns/msg is the process's CPU time
// (user+system, so GC included) per message; ratios are medians of each
// round's ratio to coder.
//
// mode=read: read each message into a reused buffer and check its UTF-8
// (as wssafe does; coder, gorilla and gws do not check text themselves),
// write nothing. "wssafe" here is wssafe's whole read side: its loop,
// guards and chain with a handler that writes nothing.
// mode=echo: the echo servers of BenchmarkServerLoop, plus "rawread",
// the prototype reader with frames written in one Write each.
//
// Run it pinned, for a few rounds:
//
//	taskset -c 1 go test -run '^$' -bench BenchmarkReadPath -benchtime 7x
func BenchmarkReadPath(b *testing.B) {
	const perRound = 200_000
	for _, mode := range []string{"read", "echo"} {
		for _, size := range []int{64, 1024} {
			b.Run(fmt.Sprintf("mode=%s/size=%d", mode, size), func(b *testing.B) {
				impls := []string{"coder", "rawread", "gorilla", "gws", "wssafe"}
				conns := make([]*gateConn, len(impls))
				for i, impl := range impls {
					c := newGateConn(size)
					h, err := readPathHandler(mode, impl, c)
					if err != nil {
						b.Fatal(err)
					}
					ln := &oneConnListener{c: c, done: make(chan struct{})}
					srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
					go srv.Serve(ln)
					b.Cleanup(func() { ln.Close(); c.Close(); srv.Close() })
					c.run(mode, 1000) // the handshake, and warm buffers and pools
					conns[i] = c
				}
				cpu := make([][]float64, len(impls))
				wall := make([][]float64, len(impls))
				allocs := make([][]float64, len(impls))
				ratio := make([][]float64, len(impls))
				round := 0
				for b.Loop() {
					took := make([]float64, len(impls))
					for k := range impls {
						k = (k + round) % len(impls)
						a0, c0, w0 := allocsNow(), cpuNow(), time.Now()
						conns[k].run(mode, perRound)
						took[k] = float64(cpuNow()-c0) / perRound
						allocs[k] = append(allocs[k], float64(allocsNow()-a0)/perRound)
						cpu[k] = append(cpu[k], took[k])
						wall[k] = append(wall[k], float64(time.Since(w0))/perRound)
					}
					for k := range impls {
						ratio[k] = append(ratio[k], took[k]/took[0])
					}
					round++
				}
				for k, impl := range impls {
					r := slices.Clone(cpu[k])
					slices.Sort(r)
					b.ReportMetric(median(cpu[k]), impl+"-ns/msg")
					if k > 0 {
						b.ReportMetric(median(ratio[k]), impl+"/coder")
					}
					q := slices.Clone(ratio[k])
					slices.Sort(q)
					b.Logf("%-8s cpu ns/msg median %5.0f (%5.0f-%5.0f)  wall median %5.0f  vs coder %.2fx (%.2f-%.2f)  allocs/msg %.2f",
						impl, median(slices.Clone(cpu[k])), r[0], r[len(r)-1], median(wall[k]),
						median(ratio[k]), q[0], q[len(q)-1], median(allocs[k]))
				}
			})
		}
	}
}

// cpuNow is the process's user+system CPU time.
func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// allocsNow is the number of heap objects allocated so far.
func allocsNow() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:objects"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// readPathHandler is impl's server for mode, counting each message read
// (mode=read) on c.
func readPathHandler(mode, impl string, c *gateConn) (http.Handler, error) {
	if mode == "echo" {
		if impl == "rawread" {
			return rawread.Echo(peers.ReadLimit), nil
		}
		return peers.Handlers()[impl]()
	}
	switch impl {
	case "coder":
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conn, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer conn.CloseNow()
			conn.SetReadLimit(peers.ReadLimit)
			var buf []byte
			for {
				typ, rd, err := conn.Reader(context.Background())
				if err != nil {
					return
				}
				if buf, err = readInto(rd, buf[:0]); err != nil {
					return
				}
				if typ == websocket.MessageText && !utf8.Valid(buf) {
					return
				}
				c.count()
			}
		}), nil
	case "rawread":
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conn, err := rawread.Upgrade(w, r)
			if err != nil {
				return
			}
			conn.Limit, conn.CheckUTF8 = peers.ReadLimit, true
			var buf []byte
			for {
				_, data, err := conn.ReadMessage(buf)
				if err != nil {
					conn.Close(rawread.CloseNormal)
					return
				}
				buf = data
				c.count()
			}
		}), nil
	case "gorilla":
		up := gorilla.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 4096}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conn, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer conn.Close()
			conn.SetReadLimit(peers.ReadLimit)
			var buf []byte
			for {
				typ, rd, err := conn.NextReader()
				if err != nil {
					return
				}
				if buf, err = readInto(rd, buf[:0]); err != nil {
					return
				}
				if typ == gorilla.TextMessage && !utf8.Valid(buf) {
					return
				}
				c.count()
			}
		}), nil
	case "gws":
		up := gws.NewUpgrader(gwsCount{c: c}, &gws.ServerOption{ReadMaxPayloadSize: peers.ReadLimit})
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s, err := up.Upgrade(w, r)
			if err != nil {
				return
			}
			s.ReadLoop()
		}), nil
	case "wssafe":
		h := wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
			c.count()
			return nil
		})
		// The same options as the wssafe echo peer (every guard on).
		return wssafe.New(h, &wssafe.Options{
			Logger:      peersLogger,
			MessageRate: wssafe.Rate{PerSecond: 1e9, Burst: 1e9},
		})
	}
	return nil, fmt.Errorf("no read-only server %q", impl)
}

type gwsCount struct {
	gws.BuiltinEventHandler
	c *gateConn
}

func (g gwsCount) OnMessage(s *gws.Conn, m *gws.Message) {
	if m.Opcode == gws.OpcodeText && !utf8.Valid(m.Bytes()) {
		s.NetConn().Close()
	}
	m.Close()
	g.c.count()
}

// readInto is io.ReadAll into buf's storage.
func readInto(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// gateConn is scriptConn with a gate: after the handshake its reads return
// the client's frames only as far as run has let them, and block after, so
// that a server waits, costing nothing, while the others are measured. It
// answers the server's pings with pongs between two frames, as a client
// would, so that wssafe's keepalive does not end a run longer than its
// ping interval and pong timeout.
type gateConn struct {
	in    []byte
	loop  int
	pos   int
	frame int // bytes of one client frame
	reply int // bytes of one echoed frame

	mu       sync.Mutex
	wake     *sync.Cond
	upgraded bool
	expired  bool
	closed   bool
	budget   int    // bytes reads may still return
	pongs    []byte // pongs owed for the server's pings, sent at the next frame boundary

	msgs    atomic.Int64 // messages counted by a read-only server
	written atomic.Int64 // bytes of echoed frames
	target  atomic.Int64 // messages the current run waits for
	reached chan struct{}
}

func newGateConn(size int) *gateConn {
	req := "GET / HTTP/1.1\r\nHost: bench.local\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	f := maskedText(bytes.Repeat([]byte("a"), size))
	c := &gateConn{in: []byte(req), loop: len(req), frame: len(f), reply: len(f) - 4}
	for len(c.in)-c.loop < 64<<10 {
		c.in = append(c.in, f...)
	}
	c.wake = sync.NewCond(&c.mu)
	c.reached = make(chan struct{}, 1)
	c.target.Store(math.MaxInt64)
	return c
}

// run lets n more frames through and waits until the server has read
// (mode=read) or echoed (mode=echo) all of them.
func (c *gateConn) run(mode string, n int) {
	var done func() int64
	if mode == "echo" {
		done = func() int64 { return c.written.Load() / int64(c.reply) }
	} else {
		done = c.msgs.Load
	}
	c.target.Store(done() + int64(n))
	c.mu.Lock()
	c.budget += n * c.frame
	c.wake.Broadcast()
	c.mu.Unlock()
	for last := done(); done() < c.target.Load(); {
		select {
		case <-c.reached:
		case <-time.After(5 * time.Second): // no progress in 5 s: the server failed
			if done() == last {
				panic("gateConn: the server stalled")
			}
			last = done()
		}
	}
}

func (c *gateConn) count() {
	if c.msgs.Add(1) >= c.target.Load() {
		c.signal()
	}
}

func (c *gateConn) signal() {
	select {
	case c.reached <- struct{}{}:
	default:
	}
}

func (c *gateConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pos == c.loop && !c.upgraded { // wait for the 101, as scriptConn does
		for !c.upgraded && !c.expired && !c.closed {
			c.wake.Wait()
		}
		if !c.upgraded && !c.closed {
			return 0, os.ErrDeadlineExceeded
		}
	}
	if c.closed {
		return 0, net.ErrClosed
	}
	if c.pos < c.loop {
		n := copy(p, c.in[c.pos:c.loop])
		c.pos += n
		return n, nil
	}
	for c.budget == 0 && len(c.pongs) == 0 && !c.closed {
		c.wake.Wait()
	}
	if c.closed {
		return 0, net.ErrClosed
	}
	n := 0
	for n < len(p) && (c.budget > 0 || len(c.pongs) > 0) {
		if (c.pos-c.loop)%c.frame == 0 && len(c.pongs) > 0 { // between two frames
			m := copy(p[n:], c.pongs)
			n += m
			c.pongs = c.pongs[m:]
			continue
		}
		end := min(len(p), n+c.budget)
		if len(c.pongs) > 0 { // stop at the end of this frame
			end = min(end, n+c.frame-(c.pos-c.loop)%c.frame)
		}
		m := copy(p[n:end], c.in[c.pos:])
		n += m
		c.budget -= m
		if c.pos += m; c.pos == len(c.in) {
			c.pos = c.loop
		}
	}
	return n, nil
}

func (c *gateConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, net.ErrClosed
	}
	if !c.upgraded {
		if bytes.HasPrefix(p, []byte("HTTP/1.1 101")) {
			c.upgraded = true
			c.wake.Broadcast()
		}
		c.mu.Unlock()
		return len(p), nil
	}
	if len(p) >= 2 && p[0] == 0x89 && int(p[1]) == len(p)-2 {
		// The keepalive's ping (one Write): answer it as a client would,
		// and do not count it as an echo.
		c.pongs = append(c.pongs, maskedPong(p[2:])...)
		c.wake.Broadcast()
		c.mu.Unlock()
		return len(p), nil
	}
	c.mu.Unlock()
	if c.written.Add(int64(len(p)))/int64(c.reply) >= c.target.Load() {
		c.signal()
	}
	return len(p), nil
}

// maskedPong is a client's pong frame for a ping's payload p.
func maskedPong(p []byte) []byte {
	f := maskedText(p)
	f[0] = 0x8A
	return f
}

func (c *gateConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.wake.Broadcast()
	c.mu.Unlock()
	return nil
}

func (c *gateConn) LocalAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80} }
func (c *gateConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000}
}
func (c *gateConn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

// SetReadDeadline matters only in the handshake phase, as for scriptConn:
// a server waiting at the gate is never given a deadline that expires
// within a run.
func (c *gateConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expired = !t.IsZero() && !t.After(time.Now())
	c.wake.Broadcast()
	return nil
}

func (c *gateConn) SetWriteDeadline(t time.Time) error { return nil }

// peersLogger is the wssafe peer's logger: Info to a JSON handler, discarded.
var peersLogger = slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
