package serve

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe"
)

// smallBuffers shrinks the send buffer of every accepted connection, so a
// peer that does not read blocks the server's writes after a few KiB.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(4096)
	}
	return c, err
}

// rawSocket opens a WebSocket on path by hand and returns the connection,
// whose receive buffer is shrunk: the test never reads from it.
func rawSocket(t *testing.T, addr, path string) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { nc.Close() })
	require.NoError(t, nc.(*net.TCPConn).SetReadBuffer(4096))
	_, err = io.WriteString(nc, "GET "+path+" HTTP/1.1\r\nHost: "+addr+"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	require.NoError(t, err)
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	nc.SetReadDeadline(time.Time{})
	return nc
}

// The example's whole shutdown, with peers that hold it: one that never
// reads while the server streams to it, one stalled mid-frame, and a
// request whose body never arrives. It ends within its deadline and
// returns nil: dropping them at the deadline is no failure of the process.
func TestServeShutdownWithinDeadline(t *testing.T) {
	var writers sync.WaitGroup
	defer writers.Wait()
	flooding := make(chan struct{}, 1)
	flood := wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		writers.Go(func() {
			big := make([]byte, 64<<10)
			flooding <- struct{}{}
			for s.Write(s.Context(), wssafe.MessageBinary, big) == nil {
			}
		})
		return nil
	})
	ep, err := wssafe.New(flood, &wssafe.Options{Logger: slog.New(slog.DiscardHandler), PingInterval: -1})
	require.NoError(t, err)
	reading := make(chan struct{})
	mux := http.NewServeMux()
	mux.Handle("/ws", ep)
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		close(reading)
		io.ReadAll(r.Body)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	const grace = 1500 * time.Millisecond
	go func() { done <- serveWithin(ctx, slog.New(slog.DiscardHandler), smallBuffers{ln}, mux, ep, grace) }()

	reader := rawSocket(t, addr, "/ws")
	_, err = reader.Write([]byte{0x81, 0x85, 0, 0, 0, 0, 'f', 'l', 'o', 'o', 'd'}) // masked "flood", zero key
	require.NoError(t, err)
	<-flooding
	staller := rawSocket(t, addr, "/ws")
	_, err = staller.Write([]byte{0x82}) // the first byte of a frame header, and no more
	require.NoError(t, err)
	body, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer body.Close()
	_, err = io.WriteString(body, "POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nx")
	require.NoError(t, err)
	<-reading

	start := time.Now()
	stop() // as SIGTERM would
	select {
	case err := <-done:
		assert.NoError(t, err, "a forced drop at the deadline is not a failure")
		assert.Less(t, time.Since(start), grace+500*time.Millisecond)
	case <-time.After(grace + 5*time.Second):
		t.Fatal("Serve did not return")
	}
}
