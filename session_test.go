package wssafe_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wssafe/wssafe"
)

func TestSessionAPI(t *testing.T) {
	t.Parallel()
	type key struct{}
	got := make(chan *wssafe.Session, 1)
	_, url := server(t, wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		s.Set(key{}, "v")
		assert.Same(t, s, wssafe.SessionFromContext(ctx))
		got <- s
		return s.WriteJSON(ctx, map[string]string{"id": s.ID()})
	}), &wssafe.Options{Subprotocols: []string{"chat.v1"}})
	c := dial(t, url+"/room/1", &websocket.DialOptions{
		Subprotocols: []string{"chat.v1"},
		HTTPHeader:   http.Header{"Authorization": {"Bearer abc"}, "X-Trace": {"t1"}},
	})
	ctx := ctxT(t)
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte("hi")))
	s := <-got
	_, reply, err := c.Read(ctx)
	require.NoError(t, err)
	assert.JSONEq(t, fmt.Sprintf(`{"id":%q}`, s.ID()), string(reply))
	assert.Len(t, s.ID(), 22)
	assert.Equal(t, "/room/1", s.Path())
	assert.Equal(t, "chat.v1", s.Subprotocol())
	assert.Equal(t, "t1", s.Header().Get("X-Trace"))
	assert.Empty(t, s.Header().Get("Authorization"), "credentials are not kept")
	assert.Equal(t, "v", s.Value(key{}))
	assert.NotEmpty(t, s.RemoteAddr())
	assert.False(t, s.StartedAt().IsZero())
	assert.NoError(t, context.Cause(s.Context()), "no cause while the session is open")

	c.Close(websocket.StatusNormalClosure, "")
	<-s.Context().Done()
	assert.Equal(t, websocket.StatusNormalClosure, wssafe.CloseStatus(context.Cause(s.Context())))
	assert.ErrorIs(t, s.WriteText(context.Background(), "late"), wssafe.ErrSessionClosed)
}

func TestOnOpenErrorCloses(t *testing.T) {
	t.Parallel()
	_, url := server(t, echo, &wssafe.Options{OnOpen: func(s *wssafe.Session) error { return wssafe.ErrForbidden }})
	c := dial(t, url, nil)
	assert.Equal(t, websocket.StatusCode(3003), readClose(t, c).Code)
}

func TestKeepaliveTimeoutCloses3008(t *testing.T) {
	t.Parallel()
	log, logs := newLogger()
	_, url := server(t, echo, &wssafe.Options{
		PingInterval: 50 * time.Millisecond,
		PongTimeout:  100 * time.Millisecond,
		Logger:       log,
	})
	pinged := make(chan struct{}, 1)
	c := dial(t, url, &websocket.DialOptions{OnPingReceived: func(context.Context, []byte) bool {
		select {
		case pinged <- struct{}{}:
		default:
		}
		return false // ignore the ping: no pong
	}})
	ce := readClose(t, c)
	assert.Equal(t, websocket.StatusCode(3008), ce.Code)
	assert.Equal(t, "timeout", ce.Reason)
	select {
	case <-pinged:
	default:
		t.Fatal("the server never pinged")
	}
	assert.Contains(t, logs.String(), `"event":"pong_timeout"`)
}

func TestKeepaliveKeepsAnsweringClientAlive(t *testing.T) {
	t.Parallel()
	closed := make(chan error, 1)
	_, url := server(t, echo, &wssafe.Options{
		PingInterval: 20 * time.Millisecond,
		PongTimeout:  200 * time.Millisecond,
		OnClose:      func(s *wssafe.Session, err error) { closed <- err },
	})
	pings := make(chan struct{}, 10)
	c := dial(t, url, &websocket.DialOptions{OnPingReceived: func(context.Context, []byte) bool {
		select {
		case pings <- struct{}{}:
		default:
		}
		return true
	}})
	ctx := c.CloseRead(ctxT(t))
	for range 5 { // several keepalive rounds pass without a close
		select {
		case <-pings:
		case <-ctx.Done():
			t.Fatal("connection closed during keepalive")
		}
	}
	c.Close(websocket.StatusNormalClosure, "")
	assert.Equal(t, websocket.StatusNormalClosure, wssafe.CloseStatus(<-closed))
}

func TestMaxLifetimeCloses1001(t *testing.T) {
	t.Parallel()
	_, url := server(t, echo, &wssafe.Options{MaxLifetime: 100 * time.Millisecond})
	c := dial(t, url, nil)
	ce := readClose(t, c)
	assert.Equal(t, websocket.StatusGoingAway, ce.Code)
}
