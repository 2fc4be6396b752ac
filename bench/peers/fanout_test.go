package peers_test

import (
	"bytes"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/wssafe/wssafe/bench/internal/wsclient"
	"github.com/wssafe/wssafe/bench/peers"
)

// broadcaster is what the load tool's /broadcast drives.
type broadcaster interface {
	Broadcast([]byte) int
	Subscribers() int
}

// TestFanouts checks that every broadcast server the load tool compares
// delivers one broadcast, whole, to each of its subscribers.
func TestFanouts(t *testing.T) {
	start := map[string]func(t *testing.T, ln net.Listener) broadcaster{
		"nbio": func(t *testing.T, ln net.Listener) broadcaster {
			if raceEnabled {
				ln.Close()
				t.Skip("nbio races inside its own accept loop under -race")
			}
			n, err := peers.StartNbio(ln, true)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(n.Stop)
			return n
		},
	}
	for name, mk := range peers.Fanouts() {
		start[name] = func(t *testing.T, ln net.Listener) broadcaster {
			f, err := mk()
			if err != nil {
				t.Fatal(err)
			}
			srv := &http.Server{Handler: f, ReadHeaderTimeout: 5 * time.Second}
			go srv.Serve(ln)
			t.Cleanup(func() { srv.Close() })
			return f
		}
	}
	for name, mk := range start {
		t.Run(name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			f := mk(t, ln)
			const subs = 3
			var conns []*wsclient.Conn
			for range subs {
				c, err := wsclient.DialWith(ln.Addr().String(), "/", false,
					wsclient.Options{Deflate: peers.Compressed(name), ServerContext: peers.ServerContext(name)})
				if err != nil {
					t.Fatal(err)
				}
				if c.Compressed() != peers.Compressed(name) {
					t.Fatalf("negotiated compression %v", c.Compressed())
				}
				t.Cleanup(func() { c.Close() })
				conns = append(conns, c)
			}
			for deadline := time.Now().Add(5 * time.Second); f.Subscribers() < subs; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("%d of %d subscribers registered", f.Subscribers(), subs)
				}
			}
			msg := bytes.Repeat([]byte("0123456789abcdef"), 64)
			if n := f.Broadcast(msg); n != subs {
				t.Fatalf("Broadcast reached %d subscribers, want %d", n, subs)
			}
			for i, c := range conns {
				if in, _ := c.WireBytes(); peers.Compressed(name) && in > 1000 {
					t.Errorf("subscriber %d: %d bytes on the wire for a compressed broadcast of %d", i, in, len(msg))
				}
				head := make([]byte, len(msg))
				n, err := c.ReadBroadcast(head)
				if err != nil {
					t.Fatalf("subscriber %d: %v", i, err)
				}
				if !bytes.Equal(head[:n], msg) {
					t.Fatalf("subscriber %d got %d bytes %q..., want the %d-byte broadcast", i, n, head[:min(n, 16)], len(msg))
				}
			}
		})
	}
}
