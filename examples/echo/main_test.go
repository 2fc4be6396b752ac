package main

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// start serves the example's endpoint, built from args, and returns its
// ws:// URL and a context for the test's calls.
func start(t *testing.T, args ...string) (string, context.Context) {
	t.Helper()
	c, err := parse(args, io.Discard)
	require.NoError(t, err)
	ep, err := newEndpoint(c, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	srv := httptest.NewServer(ep)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(func() {
		ep.Shutdown(ctx)
		srv.Close()
		cancel()
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http"), ctx
}

func dial(t *testing.T, ctx context.Context, url string) *websocket.Conn {
	t.Helper()
	conn, _, err := websocket.Dial(ctx, url, nil)
	require.NoError(t, err)
	t.Cleanup(func() { conn.CloseNow() })
	return conn
}

// closeOf reads until the connection ends and returns its close code.
func closeOf(ctx context.Context, conn *websocket.Conn) websocket.StatusCode {
	for {
		if _, _, err := conn.Read(ctx); err != nil {
			return websocket.CloseStatus(err)
		}
	}
}

func TestEchoExample(t *testing.T) {
	url, ctx := start(t, "-read-limit", "64")
	conn := dial(t, ctx, url+"/any/path")
	require.NoError(t, conn.Write(ctx, websocket.MessageText, []byte("hello")))
	_, got, err := conn.Read(ctx)
	require.NoError(t, err)
	assert.Equal(t, "Server received: hello", string(got))

	require.NoError(t, conn.Write(ctx, websocket.MessageBinary, []byte{1}))
	assert.Equal(t, websocket.StatusUnsupportedData, closeOf(ctx, conn))

	conn = dial(t, ctx, url)
	require.NoError(t, conn.Write(ctx, websocket.MessageText, []byte(strings.Repeat("x", 65))))
	assert.Equal(t, websocket.StatusMessageTooBig, closeOf(ctx, conn), "-read-limit applies")
}

func TestParseRejectsUnknownFlags(t *testing.T) {
	_, err := parse([]string{"-nope"}, io.Discard)
	assert.Error(t, err)
	c, err := parse([]string{"-msg-burst", "3"}, io.Discard)
	require.NoError(t, err)
	_, err = newEndpoint(c, slog.New(slog.DiscardHandler))
	assert.ErrorContains(t, err, "-msg-burst needs -msg-rate")
}

func TestEchoGuardFlags(t *testing.T) {
	url, ctx := start(t, "-msg-rate", "1", "-msg-burst", "2", "-max-conns", "1")
	conn := dial(t, ctx, url)
	_, resp, err := websocket.Dial(ctx, url, nil)
	require.Error(t, err, "-max-conns 1")
	assert.Equal(t, 503, resp.StatusCode)

	for range 5 {
		if conn.Write(ctx, websocket.MessageText, []byte("flood")) != nil {
			break
		}
	}
	assert.Equal(t, websocket.StatusPolicyViolation, closeOf(ctx, conn), "-msg-rate")
}

func TestEchoDenyIP(t *testing.T) {
	url, ctx := start(t, "-deny-ip", "127.0.0.0/8,::1/128")
	_, resp, err := websocket.Dial(ctx, url, nil)
	require.Error(t, err)
	assert.Equal(t, 403, resp.StatusCode)
}

func TestRunExitsOnBadFlags(t *testing.T) {
	err := run(context.Background(), []string{"-log-format", "xml"}, nil, io.Discard)
	assert.ErrorContains(t, err, "-log-format")
}
