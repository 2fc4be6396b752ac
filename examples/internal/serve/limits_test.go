package serve

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe"
)

// lowLimits makes the servers the test starts time out after d.
func lowLimits(t *testing.T, d time.Duration) {
	saved := ServerLimits
	ServerLimits.ReadHeaderTimeout, ServerLimits.ReadTimeout = d, d
	ServerLimits.WriteTimeout, ServerLimits.IdleTimeout = d, d
	ServerLimits.MaxBodyBytes = 1 << 10
	t.Cleanup(func() { ServerLimits = saved })
}

// startServe runs Serve with h and ep on a fresh listener until the test ends.
func startServe(t *testing.T, h http.Handler, ep *wssafe.Endpoint) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, slog.New(slog.DiscardHandler), ln, h, ep) }()
	t.Cleanup(func() { stop(); require.NoError(t, <-done) })
	return ln.Addr().String()
}

// TestSessionOutlivesServerTimeouts: ReadTimeout, WriteTimeout and
// IdleTimeout bound requests, not WebSocket sessions: net/http clears the
// connection's deadlines when the endpoint hijacks it, so a session that
// stays open well past all of them still reads and writes.
func TestSessionOutlivesServerTimeouts(t *testing.T) {
	const d = 100 * time.Millisecond
	lowLimits(t, d)
	ep, err := wssafe.New(wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		return s.WriteText(ctx, "echo: "+m.Text())
	}), &wssafe.Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	addr := startServe(t, ep, ep)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+addr, nil)
	require.NoError(t, err)
	defer c.CloseNow()
	for i := range 3 {
		// Silence on both sides for longer than every server timeout; the
		// time passing is what is tested.
		time.Sleep(5 * d)
		msg := strings.Repeat("x", i+1)
		require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(msg)))
		_, p, err := c.Read(ctx)
		require.NoError(t, err, "the session must outlive the server's timeouts")
		assert.Equal(t, "echo: "+msg, string(p))
	}
	assert.Equal(t, 1, ep.Stats().Active)
}

// TestSlowBodyCutByReadTimeout: on an ordinary handler, a body that
// trickles in is cut by ReadTimeout (net/http drains an unread body after
// the handler), and a handler cannot read more than MaxBodyBytes.
func TestSlowBodyCutByReadTimeout(t *testing.T) {
	const d = 300 * time.Millisecond
	lowLimits(t, d)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "page\n") })
	mux.HandleFunc("/read", func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
		}
	})
	addr := startServe(t, mux, nil)

	start := time.Now()
	nc, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer nc.Close()
	_, err = io.WriteString(nc, "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
	require.NoError(t, err)
	buf := make([]byte, 4<<10)
	for i := 0; i < 100; i++ { // a byte every 50 ms: 5 s at most
		nc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err = nc.Read(buf); err == nil {
			continue // the page
		}
		if !isTimeout(err) {
			break
		}
		nc.Write([]byte("x"))
	}
	require.Error(t, err)
	assert.False(t, isTimeout(err), "the server must cut the trickle: %v", err)
	elapsed := time.Since(start)
	assert.GreaterOrEqual(t, elapsed, d-50*time.Millisecond)
	assert.Less(t, elapsed, d+2*time.Second)

	resp, err := http.Post("http://"+addr+"/read", "text/plain", strings.NewReader(strings.Repeat("x", 2<<10)))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	assert.True(t, resp.Close, "the connection is not reused after an oversized body")
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
