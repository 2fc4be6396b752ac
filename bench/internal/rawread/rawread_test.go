package rawread_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wssafe/wssafe/bench/internal/rawread"
)

const limit = 1 << 20

func server(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(rawread.Echo(limit))
	t.Cleanup(srv.Close)
	return srv
}

// TestEchoCoderClient echoes messages of every length class, fragmented
// messages and pings interleaved, to coder/websocket's client.
func TestEchoCoderClient(t *testing.T) {
	srv := server(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadLimit(limit)
	for _, n := range []int{0, 1, 7, 8, 64, 125, 126, 127, 1024, 4095, 4096, 4097, 65535, 65536, limit} {
		for _, typ := range []websocket.MessageType{websocket.MessageText, websocket.MessageBinary} {
			p := bytes.Repeat([]byte("é"), n/2)
			if n%2 == 1 {
				p = append(p, 'x')
			}
			if err := c.Write(ctx, typ, p); err != nil {
				t.Fatal(err)
			}
			gt, got, err := c.Read(ctx)
			if err != nil {
				t.Fatalf("%d bytes: %v", n, err)
			}
			if gt != typ || !bytes.Equal(got, p) {
				t.Fatalf("%d bytes %v: echoed %v %d bytes", n, typ, gt, len(got))
			}
		}
	}
	// A message in fragments that split a two-byte rune, a ping between them.
	w, err := c.Writer(ctx, websocket.MessageText)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte("aé" + strings.Repeat("b", 300) + "é")
	for _, part := range [][]byte{want[:2], want[2:3], want[3:200], want[200:]} {
		if _, err := w.Write(part); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, got, err := c.Read(ctx); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("fragmented: %q, %v", got, err)
	}
	// Ping needs a concurrent reader for the pong.
	rctx := c.CloseRead(ctx)
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	_ = rctx
	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatalf("close handshake: %v", err)
	}
}

// frame is a masked client frame.
func frame(b0 byte, p []byte) []byte {
	f := []byte{b0}
	switch n := len(p); {
	case n < 126:
		f = append(f, 0x80|byte(n))
	case n <= 0xFFFF:
		f = binary.BigEndian.AppendUint16(append(f, 0x80|126), uint16(n))
	default:
		f = binary.BigEndian.AppendUint64(append(f, 0x80|127), uint64(n))
	}
	key := []byte{0x12, 0x34, 0x56, 0x78}
	f = append(f, key...)
	for i, c := range p {
		f = append(f, c^key[i%4])
	}
	return f
}

// TestHostileFrames sends what a server must refuse and checks the close
// code it answers with.
func TestHostileFrames(t *testing.T) {
	srv := server(t)
	big := binary.BigEndian.AppendUint64([]byte{0x82, 0x80 | 127}, limit+1)
	cases := []struct {
		name string
		in   []byte
		code uint16
	}{
		{"unmasked", []byte{0x81, 0x02, 'h', 'i'}, 1002},
		{"reserved bit", frame(0xC1, []byte("hi")), 1002},
		{"unknown opcode", frame(0x83, nil), 1002},
		{"fragmented ping", frame(0x09, nil), 1002},
		{"long ping", frame(0x89, make([]byte, 126)), 1002},
		{"continuation first", frame(0x80, []byte("x")), 1002},
		{"text inside fragmented", append(frame(0x01, []byte("a")), frame(0x81, []byte("b"))...), 1002},
		{"non-minimal length", append([]byte{0x81, 0x80 | 126, 0, 5, 1, 2, 3, 4}, 'a', 'b', 'c', 'd', 'e'), 1002},
		{"non-minimal 64-bit length", append([]byte{0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4}, 1, 2, 3, 4, 5), 1002},
		{"invalid UTF-8", frame(0x81, []byte{0xff, 'a'}), 1007},
		{"invalid UTF-8 across fragments", append(frame(0x01, []byte{0xc3}), frame(0x80, []byte{'a'})...), 1007},
		{"too big, before its payload", append(big, 1, 2, 3, 4), 1009},
		{"too big in fragments", append(frame(0x02, make([]byte, limit)), frame(0x80, []byte{1})...), 1009},
		{"close code 1005", frame(0x88, []byte{0x03, 0xED}), 1002},
		{"close reason not UTF-8", frame(0x88, []byte{0x03, 0xE8, 0xff}), 1002},
		{"close", frame(0x88, []byte{0x03, 0xE8}), 1000},
		{"close, empty", frame(0x88, nil), 1000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nc, br := dialRaw(t, srv)
			nc.SetDeadline(time.Now().Add(5 * time.Second))
			// A ping first: answered before the hostile frame.
			if _, err := nc.Write(append(frame(0x89, []byte("p")), tc.in...)); err != nil {
				t.Fatal(err)
			}
			if op, p := readFrame(t, br); op != rawread.OpPong || string(p) != "p" {
				t.Fatalf("pong: %x %q", op, p)
			}
			op, p := readFrame(t, br)
			if op != rawread.OpClose || len(p) < 2 || binary.BigEndian.Uint16(p) != tc.code {
				t.Fatalf("got op %x payload %x, want close %d", op, p, tc.code)
			}
			if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
				t.Fatalf("after the close: %v, want EOF", err)
			}
		})
	}
}

func dialRaw(t *testing.T, srv *httptest.Server) (net.Conn, *bufio.Reader) {
	nc, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	if err := req.Write(nc); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, req)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols ||
		resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	return nc, br
}

func readFrame(t *testing.T, br *bufio.Reader) (byte, []byte) {
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Fatal(err)
	}
	if h[1]&0x80 != 0 || h[1]&0x7F > 125 {
		t.Fatalf("unexpected server frame header %x", h)
	}
	p := make([]byte, h[1]&0x7F)
	if _, err := io.ReadFull(br, p); err != nil {
		t.Fatal(err)
	}
	return h[0] & 0x0F, p
}
