package wssafe

import (
	"compress/flate"
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

// What a compressed session costs the server, measured like an idle
// session's footprint (idlemem_internal_test.go): live heap and stacks
// over many connections, after garbage collection. coder/websocket keeps a
// 4 KiB bufio.Reader for inflating from a session's first compressed
// message to its end (and the session's stack stays at the 8 KiB that
// compress/flate's inflater reset grew it to), and takes a flate reader
// (about 40 KB) from a pool
// for each compressed message it reads, returned at the message's end;
// with context takeover it keeps the peer's 32 KiB window for the
// session's life. The bounds are the ones SECURITY.md states.
func TestCompressedSessionFootprint(t *testing.T) {
	if raceEnabled || testing.Short() {
		t.Skip("the race detector changes stack and heap sizes; -short skips the many connections")
	}
	for _, tc := range []struct {
		name     string
		takeover bool
		open     bool // each connection leaves its message open (the first of two fragments)
		bound    float64
	}{
		{"idle after a message", false, false, 28 << 10},
		{"in a message", false, true, 80 << 10},
		{"context takeover, idle after a message", true, false, 64 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := compressedFootprint(t, tc.takeover, false, false, 200)
			per := compressedFootprint(t, tc.takeover, true, tc.open, 200)
			t.Logf("%.0f B per connection (%.0f B without a compressed message; live heap and stacks, raw client included)", per, base)
			if per > tc.bound {
				t.Errorf("a compressed connection costs %.0f B, more than the bound of %.0f B", per, tc.bound)
			}
		})
	}
}

// compressedFootprint opens n connections that negotiate
// permessage-deflate and, with send, each send a compressed message of
// 4 KiB (only its first fragment with open), and returns the growth of
// the live heap and the stacks per connection.
func compressedFootprint(t *testing.T, takeover, send, open bool, n int) float64 {
	ep, err := New(HandlerFunc(func(context.Context, *Session, Message) error { return nil }),
		&Options{Compression: true, InsecureCompressionContextTakeover: takeover, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	m := serveForMemory(t, ep)
	defer m.close()
	msg := compressedMessage(open)
	m.warm(func(t *testing.T, addr string) net.Conn { return rawCompressedConn(t, addr, takeover, msg) })
	if !send {
		msg = nil
	}
	m.open(n, func(t *testing.T, addr string) net.Conn { return rawCompressedConn(t, addr, takeover, msg) })
	return m.perConn()
}

// compressedMessage is a masked, compressed text message of 200 short
// JSON-like objects; with open, only its first fragment.
func compressedMessage(open bool) []byte {
	var doc strings.Builder
	for i := range 200 {
		doc.WriteString(`{"id":"m` + strings.Repeat("7", i%9) + `","text":"hello there, see you at ` + string(rune('0'+i%10)) + `"}`)
	}
	b0 := byte(0x80 | rsvDeflate | 0x1) // FIN, RSV1, text
	if open {
		b0 = rsvDeflate | 0x1
	}
	return clientFrame(b0, syncDeflated(flate.DefaultCompression, []byte(doc.String())))
}

// rawCompressedConn is rawIdleConn with permessage-deflate offered (with
// context takeover or not) and agreed, and msg sent before the ping.
func rawCompressedConn(t *testing.T, addr string, takeover bool, msg []byte) net.Conn {
	t.Helper()
	offer := "permessage-deflate; client_no_context_takeover; server_no_context_takeover"
	if takeover {
		offer = "permessage-deflate"
	}
	c, br, ext := rawHandshake(t, addr, offer, append(append([]byte(nil), msg...), maskedPing...))
	if ext == "" {
		t.Fatal("handshake: no extension agreed")
	}
	readPong(t, br)
	c.SetDeadline(time.Time{})
	return c
}
