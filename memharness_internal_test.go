package wssafe

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"
)

// memHarness, the harness of the memory tests, serves an endpoint to raw
// clients that keep nothing but their sockets, and measures what the
// sessions cost as the growth of the live heap and the goroutine stacks
// after garbage collection (no timing involved), client side included.
type memHarness struct {
	t     *testing.T
	ep    *Endpoint
	srv   *httptest.Server
	addr  string
	conns []net.Conn // every connection, the warm-up one included
	base  uint64     // liveBytes when open began
	n     int        // the connections open opened
}

// serveForMemory serves ep; close ends it and every connection.
func serveForMemory(t *testing.T, ep *Endpoint) *memHarness {
	srv := httptest.NewServer(ep)
	return &memHarness{t: t, ep: ep, srv: srv, addr: strings.TrimPrefix(srv.URL, "http://")}
}

// warm opens a connection with dial that no measure counts: the
// endpoint's and net/http's one-time state (pools, tickers, the
// listener's goroutine) is not a connection's.
func (m *memHarness) warm(dial func(t *testing.T, addr string) net.Conn) {
	m.conns = append(m.conns, dial(m.t, m.addr))
}

// open takes the baseline, then opens n connections with dial.
func (m *memHarness) open(n int, dial func(t *testing.T, addr string) net.Conn) {
	m.base, m.n = liveBytes(), n
	for range n {
		m.conns = append(m.conns, dial(m.t, m.addr))
	}
}

// perConn is the growth of the live heap and the stacks since open's
// baseline, per connection open opened.
func (m *memHarness) perConn() float64 {
	return float64(int64(liveBytes()-m.base)) / float64(m.n)
}

// close closes the connections, then shuts the endpoint and the server
// down.
func (m *memHarness) close() {
	for _, c := range m.conns {
		c.Close()
	}
	m.ep.Shutdown(context.Background())
	m.srv.Close()
}

// liveBytes is the live heap and the goroutine stacks after two
// collections (the second frees what the first's finalizers released).
func liveBytes() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc + m.StackInuse
}

// rawHandshake dials addr and writes, in one write, a WebSocket handshake
// request offering the extension offer (none if it is "") and then first.
// It reads the 101 answer through a small reader and returns the socket,
// its 10-second deadline still set, the reader and the extension the
// server agreed to.
func rawHandshake(t *testing.T, addr, offer string, first []byte) (net.Conn, *bufio.Reader, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	if offer != "" {
		req += "Sec-WebSocket-Extensions: " + offer + "\r\n"
	}
	if _, err := c.Write(append([]byte(req+"\r\n"), first...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReaderSize(c, 512)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	return c, br, resp.Header.Get("Sec-WebSocket-Extensions")
}

// maskedPing is a client's ping with an empty payload.
var maskedPing = clientFrame(0x89, nil)

// readPong reads the two bytes of the pong that answers maskedPing.
func readPong(t *testing.T, br *bufio.Reader) {
	t.Helper()
	pong := make([]byte, 2)
	if _, err := io.ReadFull(br, pong); err != nil || pong[0] != 0x8A {
		t.Fatalf("no pong: % x %v", pong, err)
	}
}

// clientFrame is a client frame of first byte b0 (FIN, RSV bits, opcode)
// and payload p, masked with a zero key so that p is on the wire as it is.
func clientFrame(b0 byte, p []byte) []byte {
	out := []byte{b0}
	switch {
	case len(p) < 126:
		out = append(out, 0x80|byte(len(p)))
	case len(p) <= 0xFFFF:
		out = binary.BigEndian.AppendUint16(append(out, 0x80|126), uint16(len(p)))
	default:
		out = binary.BigEndian.AppendUint64(append(out, 0x80|127), uint64(len(p)))
	}
	return append(append(out, 0, 0, 0, 0), p...)
}

// syncDeflated is p compressed at level as one permessage-deflate message:
// a sync flush, its tail stripped.
func syncDeflated(level int, p []byte) []byte {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, level)
	w.Write(p)
	w.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte(deflateTail))
}
