package wssafe

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// What a session with context takeover costs once it has written a
// compressed message: its own compressor (about 1.2 MB) while it goes on
// compressing, and again about what a compressed session costs once
// idleCompressor has given the compressor back. Measured like the other
// footprints (live heap and stacks after collection, raw clients
// included), with the fake clock driving the release.
func TestTakeoverCompressorFootprint(t *testing.T) {
	if raceEnabled || testing.Short() {
		t.Skip("the race detector changes heap sizes and drops pooled items; -short skips the many connections")
	}
	const n = 20
	clk := NewFakeClock(time.Now())
	var mu sync.Mutex
	var sessions []*Session
	reply := strings.Repeat(`{"from":"u-1","text":"hello there, see you at five"},`, 80)
	ep, err := newEndpoint(HandlerFunc(func(ctx context.Context, s *Session, _ Message) error {
		return s.WriteText(ctx, reply)
	}), &Options{
		Compression: true, InsecureCompressionContextTakeover: true, PingInterval: -1,
		Logger: slog.New(slog.DiscardHandler),
		OnOpen: func(s *Session) error {
			mu.Lock()
			sessions = append(sessions, s)
			mu.Unlock()
			return nil
		},
	}, hooks{clock: clk, writes: writesDirect})
	if err != nil {
		t.Fatal(err)
	}
	m := serveForMemory(t, ep)
	defer m.close()
	m.warm(rawTakeoverReply)
	// Every session's compressor in use (its reply's write has returned)
	// and then given back.
	holding := func() {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range sessions {
			s.wmu.Lock()
			if s.zctx == nil {
				t.Fatal("a session with context takeover holds no compressor after a compressed message")
			}
			s.wmu.Unlock()
		}
	}
	release := func() {
		clk.AdvanceSync(compressorIdle) // the first look: compressed since
		clk.AdvanceSync(compressorIdle) // an interval without a compressed message
	}
	holding()
	release()
	mu.Lock()
	sessions = sessions[:0]
	mu.Unlock()
	m.open(n, rawTakeoverReply)
	holding()
	held := m.perConn()
	release()
	released := m.perConn()
	t.Logf("%.0f B per connection holding its compressor, %.0f B once given back", held, released)
	if held < 1<<20 {
		t.Errorf("a held compressor measured %.0f B per connection; the documented cost is about 1.2 MB", held)
	}
	if released > 32<<10 {
		t.Errorf("a session that gave its compressor back costs %.0f B, more than the bound of 32 KiB", released)
	}
}

// rawTakeoverReply makes a handshake offering permessage-deflate with
// context takeover on a plain socket, sends one plain text message and
// reads the server's one-frame reply; it returns the socket alone.
func rawTakeoverReply(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, br, ext := rawHandshake(t, addr, "permessage-deflate", clientFrame(0x81, []byte("x")))
	if ext != "permessage-deflate" {
		t.Fatalf("handshake: extension %q agreed", ext)
	}
	h := make([]byte, 2)
	if _, err := io.ReadFull(br, h); err != nil || h[0] != 0x80|rsvDeflate|0x1 || h[1] >= 126 {
		t.Fatalf("not one short compressed text frame: % x %v", h, err)
	}
	if _, err := io.ReadFull(br, make([]byte, h[1])); err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Time{})
	return c
}
