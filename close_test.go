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

func TestReturnedErrorCloses1011WithoutDetails(t *testing.T) {
	t.Parallel()
	log, logs := newLogger()
	_, url := server(t, wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		return fmt.Errorf("db password=hunter2 rejected")
	}), &wssafe.Options{Logger: log})
	c := dial(t, url, nil)
	require.NoError(t, c.Write(ctxT(t), websocket.MessageText, []byte("x")))
	ce := readClose(t, c)
	assert.Equal(t, websocket.StatusInternalError, ce.Code)
	assert.Equal(t, "internal error", ce.Reason)
	assert.Contains(t, logs.String(), `"event":"handler_error"`)
	assert.Contains(t, logs.String(), `"level":"ERROR"`)
}

func TestUserCloseErrorKeepsItsCode(t *testing.T) {
	t.Parallel()
	_, url := server(t, wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		if m.Text() == "forbidden" {
			return fmt.Errorf("checking room: %w", wssafe.ErrForbidden)
		}
		return &wssafe.CloseError{Code: 4001, Reason: "room closed"}
	}), nil)
	c := dial(t, url, nil)
	require.NoError(t, c.Write(ctxT(t), websocket.MessageText, []byte("x")))
	ce := readClose(t, c)
	assert.Equal(t, websocket.StatusCode(4001), ce.Code)
	assert.Equal(t, "room closed", ce.Reason)

	c = dial(t, url, nil)
	require.NoError(t, c.Write(ctxT(t), websocket.MessageText, []byte("forbidden")))
	ce = readClose(t, c)
	assert.Equal(t, websocket.StatusCode(3003), ce.Code)
}

func TestMessageErrorRepliesAndKeepsSession(t *testing.T) {
	t.Parallel()
	_, url := server(t, wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		if m.Text() == "bad" {
			return &wssafe.MessageError{Code: "invalid_message", Field: "email", Message: "must be an email address"}
		}
		return echo(ctx, s, m)
	}), &wssafe.Options{InvalidMessages: wssafe.Rate{PerSecond: 0.001, Burst: 2}})
	c := dial(t, url, nil)
	ctx := ctxT(t)
	for range 2 {
		require.NoError(t, c.Write(ctx, websocket.MessageText, []byte("bad")))
		_, got, err := c.Read(ctx)
		require.NoError(t, err)
		assert.JSONEq(t, `{"type":"error","code":"invalid_message","field":"email","message":"must be an email address"}`, string(got))
	}
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte("ok")))
	_, got, err := c.Read(ctx)
	require.NoError(t, err)
	assert.Equal(t, "Server received: ok", string(got))

	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte("bad"))) // third strike
	ce := readClose(t, c)
	assert.Equal(t, websocket.StatusPolicyViolation, ce.Code)
	assert.Equal(t, "too many invalid messages", ce.Reason)
}

func TestStrictModeClosesAtFirstInvalidMessage(t *testing.T) {
	t.Parallel()
	_, url := server(t, wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		return &wssafe.MessageError{Code: "invalid_message"}
	}), &wssafe.Options{CloseOnInvalidMessage: true})
	c := dial(t, url, nil)
	require.NoError(t, c.Write(ctxT(t), websocket.MessageText, []byte("x")))
	assert.Equal(t, websocket.StatusPolicyViolation, readClose(t, c).Code)
}

// Session.Close takes what a callback may return: nil, a sentinel, a
// *CloseError (its reason cut to what a close frame holds).
func TestSessionCloseFromAnotherGoroutine(t *testing.T) {
	t.Parallel()
	sessions := make(chan *wssafe.Session, 1)
	_, url := server(t, echo, &wssafe.Options{OnOpen: func(s *wssafe.Session) error {
		sessions <- s
		return nil
	}})
	long := strings.Repeat("x", 200)
	for _, tc := range []struct {
		err    error
		code   websocket.StatusCode
		reason string
	}{
		{&wssafe.CloseError{Code: 4002, Reason: "kicked"}, 4002, "kicked"},
		{nil, websocket.StatusNormalClosure, ""},
		{wssafe.ErrForbidden, wssafe.StatusForbidden, "forbidden"},
		{&wssafe.CloseError{Code: 4003, Reason: long}, 4003, long[:123]},
	} {
		c := dial(t, url, nil)
		s := <-sessions
		go s.Close(tc.err)
		ce := readClose(t, c)
		assert.Equal(t, tc.code, ce.Code, "%v", tc.err)
		assert.Equal(t, tc.reason, ce.Reason)
		<-s.Context().Done()
		s.Close(wssafe.ErrPanic) // the first cause wins
		code, _ := wssafe.CloseFrame(context.Cause(s.Context()))
		assert.Equal(t, tc.code, code, "the cause is Close's error")
	}
}

func TestExpectedClosesLogAtDebug(t *testing.T) {
	t.Parallel()
	log, logs := newLogger()
	closed := make(chan struct{})
	_, url := server(t, echo, &wssafe.Options{Logger: log, OnClose: func(*wssafe.Session, error) { close(closed) }})
	c := dial(t, url, nil)
	ctx := ctxT(t)
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte("private payload")))
	_, _, err := c.Read(ctx)
	require.NoError(t, err)
	require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))
	<-closed
	out := logs.String()
	assert.Contains(t, out, `"level":"DEBUG","msg":"wssafe: session closed"`)
	assert.NotContains(t, out, `"level":"ERROR"`)
	assert.NotContains(t, out, `"level":"WARN"`)
	assert.NotContains(t, out, "private payload")
}

// reset aborts c's TCP connection: the kernel sends RST instead of FIN.
func reset(t *testing.T, c *hostileConn) {
	t.Helper()
	tc := c.nc.(*net.TCPConn)
	require.NoError(t, tc.SetLinger(0))
	require.NoError(t, tc.Close())
}

// A peer that vanishes (a killed browser tab: a TCP reset, or EOF without a
// close frame) ends its session as 1006 abnormal closure, logged at Debug,
// never as a protocol error nor as the handler's failure.
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
