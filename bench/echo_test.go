package bench_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/wssafe/wssafe/bench/internal/pipenet"
	"github.com/wssafe/wssafe/bench/internal/wsclient"
	"github.com/wssafe/wssafe/bench/peers"
)

var sizes = []int{64, 1024, 16384}

// BenchmarkEcho measures one echoed message (client write, server read and
// write back, client read) per op, over an in-memory pipe and over
// loopback TCP. allocs/op is the whole process's: the client allocates
// nothing, so it is the server's allocations per echoed message.
func BenchmarkEcho(b *testing.B) {
	for _, transport := range []string{"pipe", "loopback"} {
		for _, size := range sizes {
			for _, impl := range peers.Names() {
				b.Run(fmt.Sprintf("%s/size=%d/impl=%s", transport, size, impl), func(b *testing.B) {
					c := connect(b, transport, impl)
					c.SetMessage(bytes.Repeat([]byte("a"), size), true)
					b.SetBytes(int64(size))
					b.ReportAllocs()
					for b.Loop() {
						if err := c.Echo(); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}

// connect starts impl's server on transport and returns a connected client;
// both are torn down when b ends.
func connect(b *testing.B, transport, impl string) *wsclient.Conn {
	b.Helper()
	var ln net.Listener
	var dial func() (net.Conn, error)
	switch transport {
	case "pipe":
		pl := pipenet.Listen()
		ln, dial = pl, pl.Dial
	default:
		tl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		ln, dial = tl, func() (net.Conn, error) { return net.Dial("tcp", tl.Addr().String()) }
	}
	serve(b, impl, ln)
	nc, err := dial()
	if err != nil {
		b.Fatal(err)
	}
	c, err := wsclient.Handshake(nc, "bench.local", "/", impl == "tcp")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

func serve(b *testing.B, impl string, ln net.Listener) {
	if impl == "tcp" {
		go peers.ServeTCP(ln)
		b.Cleanup(func() { ln.Close() })
		return
	}
	h, err := peers.Handlers()[impl]()
	if err != nil {
		b.Fatal(err)
	}
	serveHTTP(b, h, ln)
}

// serveHTTP serves h on ln until b ends.
func serveHTTP(b *testing.B, h http.Handler, ln net.Listener) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
}

// BenchmarkRefusedHandshake measures the guard path: a cross-origin
// browser handshake answered 403 before any upgrade. gws has no origin
// check of its own and is left out.
func BenchmarkRefusedHandshake(b *testing.B) {
	for _, impl := range []string{"wssafe", "coder", "gorilla"} {
		b.Run("impl="+impl, func(b *testing.B) {
			h, err := peers.Handlers()[impl]()
			if err != nil {
				b.Fatal(err)
			}
			req := httptest.NewRequest(http.MethodGet, "http://bench.local/", nil)
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", "websocket")
			req.Header.Set("Sec-WebSocket-Version", "13")
			req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
			req.Header.Set("Origin", "https://evil.example")
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusForbidden {
					b.Fatalf("status %d, want 403", w.Code)
				}
			}
		})
	}
}
