package peers_test

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wssafe/wssafe/bench/internal/chatload"
	"github.com/wssafe/wssafe/bench/internal/wsclient"
	"github.com/wssafe/wssafe/bench/peers"
)

// TestCompressedEcho checks that every compressed echo peer negotiates
// permessage-deflate with the load tool's client, echoes the chat
// workload whole (the client inflates and compares), and that a 1 KiB
// page of chat history costs fewer bytes on the wire each way than
// without compression.
func TestCompressedEcho(t *testing.T) {
	corpus := chatload.New(500, 1)
	msgs := wsclient.NewMessages(corpus.Messages(1024, 64), true)
	wire := func(t *testing.T, impl string) (in, out int64) {
		mk, ok := peers.Handlers()[impl]
		if !ok {
			t.Fatalf("no handler %q", impl)
		}
		h, err := mk()
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		c, err := wsclient.DialWith(ln.Addr().String(), "/", false,
			wsclient.Options{Deflate: peers.Compressed(impl), ServerContext: peers.ServerContext(impl)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if c.Compressed() != peers.Compressed(impl) {
			t.Fatalf("%s: negotiated compression %v", impl, c.Compressed())
		}
		c.SetMessages(msgs)
		in0, out0 := c.WireBytes()
		for range 64 * 3 {
			if err := c.Echo(); err != nil {
				t.Fatalf("%s: %v", impl, err)
			}
		}
		in1, out1 := c.WireBytes()
		return in1 - in0, out1 - out0
	}
	plainIn, plainOut := wire(t, "wssafe")
	for impl := range peers.Handlers() {
		if !peers.Compressed(impl) {
			continue
		}
		t.Run(impl, func(t *testing.T) {
			in, out := wire(t, impl)
			if out >= plainOut*3/4 {
				t.Errorf("client to server: %d bytes compressed, %d plain", out, plainOut)
			}
			if strings.HasPrefix(impl, "wssafe") && in >= plainIn*3/4 {
				t.Errorf("server to client: %d bytes compressed, %d plain", in, plainIn)
			}
		})
	}
}
