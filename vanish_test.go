package wssafe_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe"
)

// A peer that vanishes (a killed browser tab: a TCP reset, or EOF without a
// close frame) ends its session as 1006 abnormal closure, logged at Debug,
// never as a protocol error nor as the handler's failure.

// reset aborts c's TCP connection: the kernel sends RST instead of FIN.
func reset(t *testing.T, c *hostileConn) {
	t.Helper()
	tc := c.nc.(*net.TCPConn)
	require.NoError(t, tc.SetLinger(0))
	require.NoError(t, tc.Close())
}

func TestVanishedPeerIsAbnormalClosure(t *testing.T) {
	t.Parallel()
	// flood writes until its write fails, and returns that error as it
	// is, or wrapped.
	flood := func(wrap bool) wssafe.Handler {
		return wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
			big := make([]byte, 64<<10)
			for {
				if err := s.Write(ctx, wssafe.MessageBinary, big); err != nil {
					if wrap {
						return fmt.Errorf("streaming to the client: %w", err)
					}
					return err
				}
			}
		})
	}
	rows := []struct {
		name    string
		handler wssafe.Handler
		before  func(t *testing.T, c *hostileConn) // what the peer does before vanishing
	}{
		{"reset at idle", mirrorHandler, func(t *testing.T, c *hostileConn) {
			out := c.exchange(t, textFrame("hello").bytes())
			assert.Equal(t, "hello", out)
		}},
		{"reset mid-message", mirrorHandler, func(t *testing.T, c *hostileConn) {
			// The echo of the first message proves the server has read
			// the partial frame that came in the same segment.
			b := append(textFrame("first").bytes(), cut(textFrame(strings.Repeat("x", 100)), 6+40)...)
			assert.Equal(t, "first", c.exchange(t, b))
		}},
		{"reset while the handler writes", flood(false), func(t *testing.T, c *hostileConn) {
			require.NoError(t, c.nc.(*net.TCPConn).SetReadBuffer(4096))
			c.exchange(t, textFrame("go").bytes())
		}},
		{"reset while the handler writes, error wrapped", flood(true), func(t *testing.T, c *hostileConn) {
			require.NoError(t, c.nc.(*net.TCPConn).SetReadBuffer(4096))
			c.exchange(t, textFrame("go").bytes())
		}},
		{"EOF without a close frame", mirrorHandler, func(t *testing.T, c *hostileConn) {
			c.exchange(t, textFrame("hello").bytes())
			require.NoError(t, c.nc.(*net.TCPConn).CloseWrite())
		}},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			t.Parallel()
			logger, logs := newLogger()
			ended := make(chan error, 1)
			ep, url := server(t, row.handler, &wssafe.Options{Logger: logger, PingInterval: -1,
				OnClose: func(_ *wssafe.Session, err error) { ended <- err }})
			c := hostileDial(t, url)
			row.before(t, c)
			reset(t, c)
			select {
			case <-ended:
			case <-time.After(defaultBound):
				t.Fatal("the session did not end")
			}
			require.Eventually(t, func() bool { return ep.Stats().Closed[websocket.StatusAbnormalClosure] == 1 },
				defaultBound, 5*time.Millisecond, "counted as 1006: %v", ep.Stats().Closed)
			assert.Len(t, ep.Stats().Closed, 1, "counted once, as 1006 only")
			waitForLog(t, logs, `"code":1006`)
			assert.NotContains(t, logs.String(), `"level":"WARN"`)
			assert.NotContains(t, logs.String(), `"level":"ERROR"`)
			assert.NotContains(t, logs.String(), wssafe.EventProtocolError)
			assert.NotContains(t, logs.String(), wssafe.EventHandlerError)
		})
	}
}

// exchange writes b and returns the first data message the server sends.
func (c *hostileConn) exchange(t *testing.T, b []byte) string {
	t.Helper()
	_, err := c.nc.Write(b)
	require.NoError(t, err)
	c.nc.SetReadDeadline(time.Now().Add(defaultBound))
	defer c.nc.SetReadDeadline(time.Time{})
	op, _, p, err := c.readFrame()
	require.NoError(t, err)
	require.Contains(t, []byte{opText, opBinary}, op)
	return string(p)
}
