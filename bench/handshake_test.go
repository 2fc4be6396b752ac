package bench_test

import (
	"net"
	"net/http"
	"testing"

	"github.com/wssafe/wssafe/bench/internal/benchjwt"
	"github.com/wssafe/wssafe/bench/internal/wsclient"
	"github.com/wssafe/wssafe/bench/peers"
)

// BenchmarkHandshake measures one whole connection per op over loopback:
// TCP dial, the WebSocket handshake, for the first-message rows the token
// as the first message and the server's "Authenticated!" back, then a
// clean close (close frame both ways). The plain rows (no authentication)
// run in the same process for comparison. allocs/op counts the client's
// allocations too (the HTTP handshake's), which are the same in every row.
func BenchmarkHandshake(b *testing.B) {
	for _, impl := range []string{"coder", "wssafe"} {
		b.Run("plain/impl="+impl, func(b *testing.B) {
			h, err := peers.Handlers()[impl]()
			if err != nil {
				b.Fatal(err)
			}
			runHandshakes(b, h, nil)
		})
	}
	for _, alg := range benchjwt.Algorithms {
		b.Run("first-message/alg="+alg, func(b *testing.B) {
			key, err := benchjwt.New(alg)
			if err != nil {
				b.Fatal(err)
			}
			tok, err := key.Token("bench-user")
			if err != nil {
				b.Fatal(err)
			}
			h, err := peers.WssafeAuth(key.Auth())
			if err != nil {
				b.Fatal(err)
			}
			runHandshakes(b, h, tok)
		})
	}
}

// runHandshakes serves h on loopback and connects to it b.N times, sending
// token as the first message when it is not nil.
func runHandshakes(b *testing.B, h http.Handler, token []byte) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	serveHTTP(b, h, ln)
	addr := ln.Addr().String()
	b.ReportAllocs()
	for b.Loop() {
		c, err := wsclient.Dial(addr, "/", false)
		if err != nil {
			b.Fatal(err)
		}
		if token != nil {
			ack, err := c.Request(token)
			if err != nil {
				b.Fatal(err)
			}
			if string(ack) != peers.Ack {
				b.Fatalf("server answered %q to the token", ack)
			}
		}
		if err := c.CloseHandshake(); err != nil {
			b.Fatal(err)
		}
	}
}
