package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSecureCompressionFlag: with -compression the first-message protocol
// runs over a compressed session; without it nothing is negotiated.
func TestSecureCompressionFlag(t *testing.T) {
	t.Parallel()
	secret := testSecret()
	for _, on := range []bool{false, true} {
		var args []string
		if on {
			args = []string{"-compression"}
		}
		url, _ := start(t, args, secret)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{CompressionMode: websocket.CompressionNoContextTakeover})
		require.NoError(t, err)
		t.Cleanup(func() { conn.CloseNow() })
		if on {
			assert.Contains(t, resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate")
		} else {
			assert.Empty(t, resp.Header.Get("Sec-WebSocket-Extensions"))
		}
		c := &client{t: t, c: conn}
		c.send(sign(t, jwa.HS256(), secret, map[string]any{"user_id": 42, "exp": time.Now().Add(time.Hour)}, ""))
		c.expect("Authenticated!")
		msg := strings.Repeat("compressible ", 1000)
		c.send(msg)
		c.expect("Server received: " + msg)
	}
}
