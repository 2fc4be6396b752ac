package wssafe_test

import (
	"context"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
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
