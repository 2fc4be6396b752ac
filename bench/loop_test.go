package bench_test

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wssafe/wssafe/bench/peers"
)

// BenchmarkServerLoop measures a server's own work per echoed message and
// nothing else: the connection is a scriptConn whose reads return the
// client's frames at once and whose writes go nowhere, so there is no
// kernel, no client and no goroutine switch in the measurement, only the
// server goroutine's loop (read the frame, check, call the handler, write
// the reply). ns/op is that loop's CPU time per message; the loopback
// numbers add the kernel's work, which is the same for every server.
// "wssafe-idle" is wssafe with an IdleTimeout, whose deadline must cost
// nothing per message either; "wssafe-rb32k" is wssafe with a 32 KiB read
// buffer (Options.ReadBufferSize).
func BenchmarkServerLoop(b *testing.B) {
	handlers := peers.Handlers()
	handlers["wssafe-idle"] = peers.WssafeIdle
	for _, size := range sizes {
		for _, impl := range []string{"coder", "gorilla", "gws", "wssafe", "wssafe-idle", "wssafe-rb32k"} {
			b.Run(fmt.Sprintf("size=%d/impl=%s", size, impl), func(b *testing.B) {
				h, err := handlers[impl]()
				if err != nil {
					b.Fatal(err)
				}
				c := newScriptConn(size)
				ln := &oneConnListener{c: c, done: make(chan struct{})}
				srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
				go srv.Serve(ln)
				b.Cleanup(func() { ln.Close(); c.Close(); srv.Close() })
				c.waitFor(1) // the handshake is done and the loop runs
				b.SetBytes(int64(size))
				b.ReportAllocs()
				reads := c.reads.Load()
				b.ResetTimer()
				c.waitFor(int64(b.N) + 1)
				b.ReportMetric(float64(c.reads.Load()-reads)/float64(b.N), "reads/op")
			})
		}
	}
}

// scriptConn is the server's side of a client that sends the upgrade
// request and then an endless stream of masked text frames of one size,
// never waiting for the echoes, which it counts and discards.
type scriptConn struct {
	in    []byte // the handshake, then frames; reads continue from loop
	loop  int    // where the frames start
	pos   int
	reply int // bytes of one echoed frame

	upgraded atomic.Bool  // the 101 response has been written
	mu       sync.Mutex   // the handshake phase: a read after the request waits for the upgrade
	wake     *sync.Cond   // signalled by the upgrade and by a read deadline in the past
	expired  bool         // a read deadline in the past is set
	written  atomic.Int64 // bytes of echoed frames
	reads    atomic.Int64 // Read calls, each a system call on a real socket
	target   atomic.Int64 // waitFor's goal, in bytes
	reached  chan struct{}
	closed   atomic.Bool
}

func newScriptConn(size int) *scriptConn {
	req := "GET / HTTP/1.1\r\nHost: bench.local\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	frame := maskedText(bytes.Repeat([]byte("a"), size))
	c := &scriptConn{in: []byte(req), loop: len(req)}
	for len(c.in)-c.loop < 64<<10 {
		c.in = append(c.in, frame...)
	}
	c.reply = len(frame) - 4 // the server's frame is not masked
	c.reached = make(chan struct{}, 1)
	c.wake = sync.NewCond(&c.mu)
	c.target.Store(math.MaxInt64)
	return c
}

// maskedText is p in one masked text frame.
func maskedText(p []byte) []byte {
	f := []byte{0x81}
	switch n := len(p); {
	case n < 126:
		f = append(f, 0x80|byte(n))
	case n <= 0xFFFF:
		f = binary.BigEndian.AppendUint16(append(f, 0x80|126), uint16(n))
	default:
		f = binary.BigEndian.AppendUint64(append(f, 0x80|127), uint64(n))
	}
	var key [4]byte
	rand.Read(key[:])
	f = append(f, key[:]...)
	for i, c := range p {
		f = append(f, c^key[i%4])
	}
	return f
}

func (c *scriptConn) Read(p []byte) (int, error) {
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	c.reads.Add(1)
	if c.pos == c.loop && !c.upgraded.Load() {
		// Like a client that waits for the 101 before it sends frames
		// (gorilla refuses data sent before the handshake completes).
		// net/http reads ahead in the background and unblocks that read
		// with a deadline in the past when the handler hijacks.
		c.mu.Lock()
		for !c.upgraded.Load() && !c.expired && !c.closed.Load() {
			c.wake.Wait()
		}
		expired := c.expired
		c.mu.Unlock()
		if expired && !c.upgraded.Load() {
			return 0, os.ErrDeadlineExceeded
		}
	}
	if c.pos < c.loop { // the request, and nothing after it
		n := copy(p, c.in[c.pos:c.loop])
		c.pos += n
		return n, nil
	}
	n := 0
	for n < len(p) {
		m := copy(p[n:], c.in[c.pos:])
		n += m
		if c.pos += m; c.pos == len(c.in) {
			c.pos = c.loop
		}
	}
	return n, nil
}

func (c *scriptConn) Write(p []byte) (int, error) {
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	if !c.upgraded.Load() {
		if bytes.HasPrefix(p, []byte("HTTP/1.1 101")) {
			c.mu.Lock()
			c.upgraded.Store(true)
			c.wake.Broadcast()
			c.mu.Unlock()
		}
		return len(p), nil
	}
	if c.written.Add(int64(len(p))) >= c.target.Load() {
		select {
		case c.reached <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

// waitFor blocks until n echoes in all have been written.
func (c *scriptConn) waitFor(n int64) {
	c.target.Store(n * int64(c.reply))
	for c.written.Load() < c.target.Load() && !c.closed.Load() {
		select {
		case <-c.reached:
		case <-time.After(time.Second): // the echo stalled or the server failed
			if c.written.Load() == 0 {
				panic("scriptConn: no echo within a second")
			}
		}
	}
}

func (c *scriptConn) Close() error {
	c.mu.Lock()
	c.closed.Store(true)
	c.wake.Broadcast()
	c.mu.Unlock()
	return nil
}

func (c *scriptConn) LocalAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80} }
func (c *scriptConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000}
}
func (c *scriptConn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

// SetReadDeadline matters only in the handshake phase (see Read): the
// frames never keep a reader waiting.
func (c *scriptConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expired = !t.IsZero() && !t.After(time.Now())
	c.wake.Broadcast()
	return nil
}

func (c *scriptConn) SetWriteDeadline(t time.Time) error { return nil }

// oneConnListener accepts c once, then blocks until closed.
type oneConnListener struct {
	c    net.Conn
	once sync.Once
	done chan struct{}
	sent bool
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	if !l.sent {
		l.sent = true
		return l.c, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return l.c.LocalAddr() }
