package wssafe_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe"
)

// ServeHTTP returns once the connection is upgraded: the session runs on
// a goroutine of its own, so net/http's per-request state is not kept for
// the session's life. The session goes on serving after ServeHTTP has
// returned, and its end is seen by OnClose, not by a middleware.
func TestServeHTTPReturnsAfterUpgrade(t *testing.T) {
	t.Parallel()
	closed := make(chan struct{})
	logger, _ := newLogger()
	ep, err := wssafe.New(echo, &wssafe.Options{Logger: logger,
		OnClose: func(*wssafe.Session, error) { close(closed) }})
	require.NoError(t, err)
	returned := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ep.ServeHTTP(w, r)
		returned <- struct{}{}
	}))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ep.Shutdown(ctx)
		srv.Close()
	})
	c := dial(t, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("ServeHTTP still runs with the session open")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte("hi")))
	_, got, err := c.Read(ctx)
	require.NoError(t, err)
	assert.Equal(t, "Server received: hi", string(got))
	select {
	case <-closed:
		t.Fatal("the session ended with ServeHTTP")
	default:
	}
	require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))
	<-closed
}

// A panic in OnOpen, which runs on the session's goroutine after ServeHTTP
// has returned, is recovered: it is logged, the session is closed with
// 1011, and the endpoint serves the next session.
func TestOnOpenPanicClosesSession(t *testing.T) {
	t.Parallel()
	logger, logs := newLogger()
	first := true
	_, url := server(t, echo, &wssafe.Options{Logger: logger, OnOpen: func(*wssafe.Session) error {
		if first {
			first = false
			panic("test-only OnOpen bug")
		}
		return nil
	}})
	c := dial(t, url, nil)
	ce := readClose(t, c)
	assert.Equal(t, websocket.StatusInternalError, ce.Code)
	waitForLog(t, logs, `"event":"panic"`)
	assert.NotContains(t, ce.Reason, "test-only", "the panic's value stays in the log")

	c2 := dial(t, url, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, c2.Write(ctx, websocket.MessageText, []byte("again")))
	_, got, err := c2.Read(ctx)
	require.NoError(t, err)
	assert.Equal(t, "Server received: again", string(got))
}
