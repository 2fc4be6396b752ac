package wssafe

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
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
	srv := httptest.NewServer(ep)
	defer srv.Close()
	defer ep.Shutdown(context.Background())
	addr := strings.TrimPrefix(srv.URL, "http://")
	msg := compressedMessage(open)
	warm := rawCompressedConn(t, addr, takeover, msg)
	defer warm.Close()
	if !send {
		msg = nil
	}
	before := liveBytes()
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		conns = append(conns, rawCompressedConn(t, addr, takeover, msg))
	}
	after := liveBytes()
	return float64(after-before) / float64(n)
}

// compressedMessage is a masked, compressed text message of 4 KiB of
// JSON-like text; with open, only its first fragment.
func compressedMessage(open bool) []byte {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.DefaultCompression)
	for i := 0; b.Len() < 4096 && i < 200; i++ {
		io.WriteString(w, `{"id":"m`+strings.Repeat("7", i%9)+`","text":"hello there, see you at `+string(rune('0'+i%10))+`"}`)
	}
	w.Flush()
	p := bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
	b0 := byte(0x80 | 0x40 | 0x1) // FIN, RSV1, text
	if open {
		b0 = 0x40 | 0x1
	}
	out := []byte{b0, 0x80 | 126, byte(len(p) >> 8), byte(len(p)), 0, 0, 0, 0} // a zero mask
	return append(out, p...)
}

// rawCompressedConn is rawIdleConn with permessage-deflate offered and msg
// sent before the ping.
func rawCompressedConn(t *testing.T, addr string, takeover bool, msg []byte) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	ext := "permessage-deflate; client_no_context_takeover; server_no_context_takeover"
	if takeover {
		ext = "permessage-deflate"
	}
	req := "GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Extensions: " + ext + "\r\n\r\n"
	ping := []byte{0x89, 0x80, 1, 2, 3, 4}
	if _, err := c.Write(append(append([]byte(req), msg...), ping...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReaderSize(c, 512)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Extensions") == "" {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	pong := make([]byte, 2)
	if _, err := io.ReadFull(br, pong); err != nil || pong[0] != 0x8A {
		t.Fatalf("no pong: % x %v", pong, err)
	}
	c.SetDeadline(time.Time{})
	return c
}
