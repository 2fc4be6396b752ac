package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestChatCompressionFlag: with -compression the chat's socket negotiates
// permessage-deflate and its protocol runs unchanged; without it (the
// default) nothing is negotiated.
func TestChatCompressionFlag(t *testing.T) {
	for _, on := range []bool{false, true} {
		var args []string
		if on {
			args = []string{"-compression"}
		}
		_, base := chatServer(t, args...)
		ann := login(t, base, "Ann", "ann@example.com")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, resp, err := websocket.Dial(ctx, strings.Replace(base, "http", "ws", 1)+"/ws", &websocket.DialOptions{
			Subprotocols:    []string{"chat.v1", "bearer." + ann.Token},
			CompressionMode: websocket.CompressionNoContextTakeover,
		})
		require.NoError(t, err)
		t.Cleanup(func() { c.CloseNow() })
		assert.Equal(t, "chat.v1", c.Subprotocol())
		if on {
			assert.Contains(t, resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate")
		} else {
			assert.Empty(t, resp.Header.Get("Sec-WebSocket-Extensions"))
		}
		next(t, c, "presence")
		text := strings.Repeat("la ", 166) // 498 characters: compressed by the client
		send(t, c, `{"type":"say","text":"`+text+`"}`)
		assert.Equal(t, text, next(t, c, "said")["text"])
	}
}
