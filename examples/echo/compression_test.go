package main

import (
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEchoCompressionFlag: -compression negotiates permessage-deflate
// without context takeover with a client that offers it, and compressed
// messages are echoed; without the flag nothing is negotiated.
func TestEchoCompressionFlag(t *testing.T) {
	for _, on := range []bool{false, true} {
		var args []string
		if on {
			args = []string{"-compression"}
		}
		url, ctx := start(t, args...)
		conn, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{CompressionMode: websocket.CompressionNoContextTakeover})
		require.NoError(t, err)
		t.Cleanup(func() { conn.CloseNow() })
		ext := resp.Header.Get("Sec-WebSocket-Extensions")
		if on {
			assert.Contains(t, ext, "permessage-deflate")
			assert.Contains(t, ext, "server_no_context_takeover")
			assert.Contains(t, ext, "client_no_context_takeover")
		} else {
			assert.Empty(t, ext)
		}
		msg := strings.Repeat(`{"type":"say","text":"hello"}`, 500) // compressed by the client
		require.NoError(t, conn.Write(ctx, websocket.MessageText, []byte(msg)))
		_, got, err := conn.Read(ctx)
		require.NoError(t, err)
		assert.Equal(t, "Server received: "+msg, string(got))
	}
}
