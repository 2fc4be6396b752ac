package main

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEchoExample(t *testing.T) {
	c, err := parse([]string{"-read-limit", "64"})
	require.NoError(t, err)
	ep, err := newEndpoint(c, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	srv := httptest.NewServer(ep)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	defer ep.Shutdown(ctx)
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/any/path"

	conn, _, err := websocket.Dial(ctx, url, nil)
	require.NoError(t, err)
	defer conn.CloseNow()
	require.NoError(t, conn.Write(ctx, websocket.MessageText, []byte("hello")))
	_, got, err := conn.Read(ctx)
	require.NoError(t, err)
	assert.Equal(t, "Server received: hello", string(got))

	require.NoError(t, conn.Write(ctx, websocket.MessageBinary, []byte{1}))
	_, _, err = conn.Read(ctx)
	assert.Equal(t, websocket.StatusUnsupportedData, websocket.CloseStatus(err))

	conn, _, err = websocket.Dial(ctx, url, nil)
	require.NoError(t, err)
	defer conn.CloseNow()
	require.NoError(t, conn.Write(ctx, websocket.MessageText, []byte(strings.Repeat("x", 65))))
	_, _, err = conn.Read(ctx)
	assert.Equal(t, websocket.StatusMessageTooBig, websocket.CloseStatus(err), "-read-limit applies")
}

func TestParseRejectsUnknownFlags(t *testing.T) {
	_, err := parse([]string{"-nope"})
	assert.Error(t, err)
}

func TestEchoGuardFlags(t *testing.T) {
	c, err := parse([]string{"-msg-rate", "1", "-msg-burst", "2", "-max-conns", "1"})
	require.NoError(t, err)
	ep, err := newEndpoint(c, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	srv := httptest.NewServer(ep)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	defer ep.Shutdown(ctx)
	url := "ws" + strings.TrimPrefix(srv.URL, "http")

	conn, _, err := websocket.Dial(ctx, url, nil)
	require.NoError(t, err)
	defer conn.CloseNow()
	_, resp, err := websocket.Dial(ctx, url, nil)
	require.Error(t, err, "-max-conns 1")
	assert.Equal(t, 503, resp.StatusCode)

	for range 5 {
		if conn.Write(ctx, websocket.MessageText, []byte("flood")) != nil {
			break
		}
	}
	for {
		_, _, err = conn.Read(ctx)
		if err != nil {
			break
		}
	}
	assert.Equal(t, websocket.StatusPolicyViolation, websocket.CloseStatus(err), "-msg-rate")
}

func TestEchoDenyIP(t *testing.T) {
	c, err := parse([]string{"-deny-ip", "127.0.0.0/8,::1/128"})
	require.NoError(t, err)
	ep, err := newEndpoint(c, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	srv := httptest.NewServer(ep)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	require.Error(t, err)
	assert.Equal(t, 403, resp.StatusCode)
}
