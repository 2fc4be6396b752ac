package wssafe

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// An idle session's footprint: what an open connection costs the server
// once the handshake is over, measured over many connections with the
// heap's live bytes and the goroutine stacks after garbage collection (no
// timing involved). The bounds sit between what a session costs now and
// what it cost while it kept a read buffer of its own for its whole life
// (4 KiB more, before reads borrowed their buffers: see sockReader), so
// they fail if that comes back, or if something per session grows by a
// kilobyte or more. What the figures are made of is in
// bench/PERFORMANCE.md ("Idle connections at 10,000").
func TestIdleSessionFootprint(t *testing.T) {
	if raceEnabled || testing.Short() {
		t.Skip("the race detector changes stack and heap sizes; -short skips the many connections")
	}
	for _, tc := range []struct {
		name   string
		direct bool
		bound  float64 // bytes per connection, server and raw client together
	}{
		// No read buffer while idle (borrowed per read), a 4 KiB write
		// buffer, a 4 KiB stack, the session.
		{"default", false, 16 << 10},
		// The write buffer shrunk to controlWriteBuffer.
		{"direct-writes", true, 11 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			per := idleFootprint(t, tc.direct, 400)
			t.Logf("%.0f B per idle connection (live heap and stacks, raw client included)", per)
			if per > tc.bound {
				t.Errorf("an idle connection costs %.0f B, more than the bound of %.0f B", per, tc.bound)
			}
		})
	}
}

// idleFootprint opens n connections to a wssafe endpoint, each with a raw
// client that keeps nothing but its socket, waits until each session's
// read loop has answered a ping, and returns the growth of the live heap
// and the stacks per connection.
func idleFootprint(t *testing.T, direct bool, n int) float64 {
	ep, err := New(HandlerFunc(func(context.Context, *Session, Message) error { return nil }), nil)
	if err != nil {
		t.Fatal(err)
	}
	ep.cfg.direct = direct
	m := serveForMemory(t, ep)
	defer m.close()
	m.warm(rawIdleConn)
	m.open(n, rawIdleConn)
	return m.perConn()
}

// rawIdleConn makes a WebSocket handshake on a plain socket and sends a
// ping: the pong proves that the session's read loop runs. It returns the
// socket alone, so the client's side of a connection stays a few hundred
// bytes.
func rawIdleConn(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, br, _ := rawHandshake(t, addr, "", maskedPing)
	readPong(t, br)
	if br.Buffered() != 0 {
		t.Fatalf("%d bytes after the pong", br.Buffered())
	}
	c.SetDeadline(time.Time{})
	return c
}

// With direct writes, hijackCapture gives coder/websocket a write buffer
// of controlWriteBuffer bytes, enough for the largest control frame in one
// Write on the connection; without them, net/http's 4 KiB stays.
func TestHijackShrinksWriter(t *testing.T) {
	t.Parallel()
	if controlWriteBuffer < 2+125 {
		t.Fatalf("controlWriteBuffer %d is below the largest control frame", controlWriteBuffer)
	}
	for _, direct := range []bool{false, true} {
		t.Run(fmt.Sprintf("direct=%v", direct), func(t *testing.T) {
			t.Parallel()
			type result struct {
				size, writes int
				err          error
			}
			res := make(chan result, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				h := &hijackCapture{ResponseWriter: w, cfg: &config{Options: Options{ReadBufferSize: DefaultReadBufferSize}, direct: direct}}
				conn, brw, err := h.Hijack()
				if err != nil {
					res <- result{err: err}
					return
				}
				defer conn.Close()
				// The largest control frame, written as coder/websocket
				// writes one: header, then payload, then Flush.
				frame := append([]byte{0x8A, 125}, bytes.Repeat([]byte("p"), 125)...)
				cw := &countingConn{Conn: h.conn.Conn}
				h.conn.Conn = cw
				brw.Writer.Write(frame[:2])
				brw.Writer.Write(frame[2:])
				err = brw.Writer.Flush()
				res <- result{size: brw.Writer.Size(), writes: cw.n, err: err}
			}))
			defer srv.Close()
			nc, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(nc, "GET / HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, 127)
			if _, err := io.ReadFull(nc, got); err != nil {
				t.Fatal(err)
			}
			out := <-res
			if out.err != nil {
				t.Fatal(out.err)
			}
			want := 4096
			if direct {
				want = controlWriteBuffer
			}
			if out.size != want {
				t.Errorf("write buffer of %d bytes, want %d", out.size, want)
			}
			if out.writes != 1 {
				t.Errorf("the control frame took %d writes on the connection, want 1", out.writes)
			}
		})
	}
}

// countingConn counts the Writes on a connection.
type countingConn struct {
	net.Conn
	n int
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.n++
	return c.Conn.Write(p)
}
