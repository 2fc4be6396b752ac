package wssafe_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
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

// Shutdown's close handshakes fit inside its deadline, whatever the peers
// do: a peer that never reads (its receive window full, so the close
// frame's write blocks), one stalled mid-frame, or both. The well-behaved
// bystander still gets its 1001.
func TestShutdownWithinDeadline(t *testing.T) {
	t.Parallel()
	rows := []struct {
		name    string
		reads   bool   // the peer reads what the server sends
		partial []byte // what the peer sends before it stalls
	}{
		{name: "peer that never reads, full buffers"},
		{name: "peer stalled mid-frame", reads: true, partial: cut(textFrame("never finished"), 1)},
		{name: "peer stalled mid-frame that never reads, full buffers", partial: cut(binFrame(make([]byte, 1000)), 6+10)},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			t.Parallel()
			var writers sync.WaitGroup
			defer writers.Wait()
			flooding := make(chan struct{}, 1)
			opened := make(chan *wssafe.Session, 2)
			logger, logs := newLogger()
			ep, err := wssafe.New(mirrorHandler, &wssafe.Options{Logger: logger, PingInterval: -1,
				OnOpen: func(s *wssafe.Session) error { opened <- s; return nil }})
			require.NoError(t, err)
			srv := httptest.NewUnstartedServer(ep)
			srv.Listener = smallBuffers{srv.Listener}
			srv.Start()
			defer srv.Close()
			url := "ws" + strings.TrimPrefix(srv.URL, "http")

			bystander := dial(t, url, nil)
			<-opened
			peer := hostileDial(t, url)
			s := <-opened
			if !row.reads {
				require.NoError(t, peer.nc.(*net.TCPConn).SetReadBuffer(4096))
				// An application goroutine streams to the peer until its
				// write blocks on the full buffers, and fails.
				writers.Go(func() {
					big := make([]byte, 64<<10)
					flooding <- struct{}{}
					for s.Write(s.Context(), wssafe.MessageBinary, big) == nil {
					}
				})
				<-flooding
			} else {
				// Keep reading, so that only the stall holds the server.
				go peer.readUntilClose(time.Now(), 10*time.Second)
			}
			if row.partial != nil {
				_, err := peer.nc.Write(row.partial)
				require.NoError(t, err)
			}
			bye := make(chan websocket.StatusCode, 1)
			go func() {
				for {
					if _, _, err := bystander.Read(context.Background()); err != nil {
						bye <- websocket.CloseStatus(err)
						return
					}
				}
			}()

			const deadline = 1500 * time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			start := time.Now()
			err = ep.Shutdown(ctx)
			elapsed := time.Since(start)
			assert.NoError(t, err, "every session ended within the deadline; a dropped peer is no failure")
			assert.Less(t, elapsed, deadline)
			assert.Equal(t, websocket.StatusGoingAway, <-bye, "the bystander got its close handshake")
			assert.NotContains(t, logs.String(), `"level":"ERROR"`)
			assert.NotContains(t, logs.String(), wssafe.EventWriteTimeout, "cutting writes at the deadline is not a write timeout")
		})
	}
}

// startServer serves h on a real http.Server on loopback, registered with
// ep through ShutdownWith, and returns it with its ws:// URL and the
// channel that receives Serve's result.
func startServer(t *testing.T, ep *wssafe.Endpoint, h http.Handler) (*http.Server, string, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	ep.ShutdownWith(srv)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return srv, "ws://" + ln.Addr().String(), served
}

// ShutdownWith makes a server's ordinary graceful stop reach the sessions:
// srv.Shutdown alone closes every one with 1001, and ep.Shutdown after it
// waits, within its deadline, until their callbacks have returned.
func TestShutdownWithServer(t *testing.T) {
	t.Parallel()
	const clients = 3
	inCallback := make(chan struct{}, clients)
	release := make(chan struct{})
	var returned atomic.Int32
	ep, err := wssafe.New(wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		inCallback <- struct{}{}
		<-ctx.Done() // the session ends while its callback still runs
		<-release
		returned.Add(1)
		return nil
	}), &wssafe.Options{Logger: quiet(), PingInterval: -1})
	require.NoError(t, err)
	srv, url, served := startServer(t, ep, ep)

	var conns []*websocket.Conn
	for range clients {
		c := dial(t, url, nil)
		sendMsg(t, c, websocket.MessageText, "hold")
		<-inCallback
		conns = append(conns, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, srv.Shutdown(ctx))
	assert.ErrorIs(t, <-served, http.ErrServerClosed)
	for _, c := range conns {
		_, _, err := c.Read(ctx)
		assert.Equal(t, websocket.StatusGoingAway, websocket.CloseStatus(err), "srv.Shutdown alone closes the session with 1001")
	}

	waited := make(chan error, 1)
	go func() { waited <- ep.Shutdown(ctx) }()
	select {
	case err := <-waited:
		t.Fatalf("Shutdown returned (%v) while callbacks still ran", err)
	default:
	}
	close(release)
	require.NoError(t, <-waited)
	assert.EqualValues(t, clients, returned.Load(), "every callback returned before Shutdown did")
	assert.Zero(t, len(ep.Hub().Sessions()))
	assert.NoError(t, ep.Shutdown(ctx), "calling it again changes nothing")
}

// The endpoint's shutdown before the server's, the order without
// ShutdownWith, still works with it: the hook then finds nothing to do.
func TestShutdownWithEndpointFirst(t *testing.T) {
	t.Parallel()
	ep, err := wssafe.New(echo, &wssafe.Options{Logger: quiet(), PingInterval: -1})
	require.NoError(t, err)
	srv, url, served := startServer(t, ep, ep)
	c := dial(t, url, nil)
	assert.Equal(t, "Server received: hi", roundTrip(t, c, "hi"))
	bye := make(chan websocket.StatusCode, 1)
	go func() {
		_, _, err := c.Read(context.Background())
		bye <- websocket.CloseStatus(err)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, ep.Shutdown(ctx))
	assert.Equal(t, websocket.StatusGoingAway, <-bye)
	require.NoError(t, srv.Shutdown(ctx))
	assert.ErrorIs(t, <-served, http.ErrServerClosed)
	assert.NoError(t, ep.Shutdown(ctx))
}

// Shutdown reports the outcome, not a race: once every session has ended
// it returns nil, even when ctx has ended too (as after a server's
// Shutdown that used up the deadline).
func TestShutdownEndedBeforeExpiredContext(t *testing.T) {
	t.Parallel()
	ep, err := wssafe.New(echo, &wssafe.Options{Logger: quiet()})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 20 {
		assert.NoError(t, ep.Shutdown(ctx))
	}
}

func TestShutdownCloses1001ThenRefuses503(t *testing.T) {
	t.Parallel()
	started, returned := make(chan struct{}), make(chan struct{})
	ep, url := server(t, wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		defer close(returned)
		close(started)
		<-ctx.Done() // a callback still running at shutdown
		return ctx.Err()
	}), nil)
	c1 := dial(t, url, nil)
	c2 := dial(t, url, nil)
	require.NoError(t, c1.Write(ctxT(t), websocket.MessageText, []byte("block")))
	<-started

	shut := make(chan error, 1)
	go func() { shut <- ep.Shutdown(ctxT(t)) }()
	for _, c := range []*websocket.Conn{c1, c2} {
		ce := readClose(t, c)
		assert.Equal(t, websocket.StatusGoingAway, ce.Code)
	}
	require.NoError(t, <-shut)
	<-returned // Shutdown waited for the callback

	_, resp, err := websocket.Dial(ctxT(t), url, nil)
	require.Error(t, err)
	require.NotNil(t, resp)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.NotEmpty(t, resp.Header.Get("Retry-After"))
}

func TestShutdownHonoursDeadline(t *testing.T) {
	t.Parallel()
	opened := make(chan struct{})
	ep, url := server(t, echo, &wssafe.Options{OnOpen: func(*wssafe.Session) error { close(opened); return nil }})
	dialRaw(t, url, nil) // never answers the close handshake
	<-opened
	// Long enough that the margin Shutdown keeps (a tenth) leaves the
	// session time to end under -race on a loaded machine.
	const deadline = 500 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	err := ep.Shutdown(ctx)
	// The peer was dropped at the deadline's margin: every session has
	// ended, which is a successful shutdown.
	assert.NoError(t, err)
	assert.GreaterOrEqual(t, time.Since(start), deadline*8/10, "the close handshake waited for the peer")
	assert.Less(t, time.Since(start), deadline+defaultBound)
}

func TestShutdownReportsCallbackStillRunning(t *testing.T) {
	t.Parallel()
	started, release := make(chan struct{}), make(chan struct{})
	stuck := wssafe.HandlerFunc(func(context.Context, *wssafe.Session, wssafe.Message) error {
		close(started)
		<-release // ignores its context
		return nil
	})
	ep, url := server(t, stuck, nil)
	defer close(release)
	c := dial(t, url, nil)
	require.NoError(t, c.Write(ctxT(t), websocket.MessageText, []byte("hold")))
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	assert.ErrorIs(t, ep.Shutdown(ctx), context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 100*time.Millisecond+defaultBound)
}
