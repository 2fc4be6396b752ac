package wssafe_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe"
)

// The deadlines are armed lazily (deadline.go); these tests pin down that
// a stale deadline never fails a later read or write, and that a peer that
// stops reading is still dropped.

func mirrorOnce(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(msg)))
	_, got, err := c.Read(ctx)
	require.NoError(t, err)
	assert.Equal(t, msg, string(got))
}

func TestWriteDeadlineRenewedAfterIdle(t *testing.T) {
	t.Parallel()
	_, url := server(t, mirrorHandler, &wssafe.Options{WriteTimeout: 100 * time.Millisecond, PingInterval: -1})
	c := dial(t, url, nil)
	mirrorOnce(t, c, "first")
	// Idle past 1.5 x WriteTimeout: the deadline armed by the first write
	// has expired. Waiting is the point of the test, not synchronization.
	time.Sleep(300 * time.Millisecond)
	mirrorOnce(t, c, "after idle")
}

func TestMessageDeadlineClearedAfterMessage(t *testing.T) {
	t.Parallel()
	_, url := server(t, mirrorHandler, &wssafe.Options{MessageTimeout: 150 * time.Millisecond, PingInterval: -1})
	c := hostileDial(t, url)
	// A message that needs a second socket read arms the message deadline.
	_, err := c.nc.Write(frame{op: opText, data: []byte("tri"), more: true}.bytes())
	require.NoError(t, err)
	time.Sleep(50 * time.Millisecond) // let the server block mid-message
	_, err = c.nc.Write(frame{op: opCont, data: []byte("ckle")}.bytes())
	require.NoError(t, err)
	// Idle well past the message timeout: the deadline must have been
	// cleared when the message ended, or this message would be refused.
	time.Sleep(400 * time.Millisecond)
	out := c.play(frames(textFrame("later"), closeFrame(1000, "")), defaultBound)
	assert.Equal(t, []string{"trickle", "later"}, out.messages)
	assert.Equal(t, 1000, out.code)
}

func TestWriteTimeoutDropsPeerThatStopsReading(t *testing.T) {
	t.Parallel()
	ended := make(chan error, 1)
	flood := wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		big := make([]byte, 256<<10)
		for {
			if err := s.Write(ctx, wssafe.MessageBinary, big); err != nil {
				return err
			}
		}
	})
	logger, logs := newLogger()
	_, url := server(t, flood, &wssafe.Options{
		WriteTimeout: 200 * time.Millisecond, PingInterval: -1, Logger: logger,
		OnClose: func(_ *wssafe.Session, err error) { ended <- err },
	})
	c := hostileDial(t, url)
	require.NoError(t, c.nc.(*net.TCPConn).SetReadBuffer(4096))
	start := time.Now()
	_, err := c.nc.Write(textFrame("go").bytes())
	require.NoError(t, err)
	select {
	case err := <-ended:
		assert.ErrorIs(t, err, wssafe.ErrWriteTimeout)
		assert.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond)
	case <-time.After(5 * time.Second):
		t.Fatal("a peer that stopped reading was not dropped")
	}
	assert.NotContains(t, logs.String(), `"level":"ERROR"`)
}
