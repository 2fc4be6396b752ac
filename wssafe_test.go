package wssafe_test

import (
	"context"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEchoProtocol(t *testing.T) {
	t.Parallel()
	_, url := server(t, echo, nil)
	c := dial(t, url, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, msg := range []string{"hello", "", "xin chào", "{\"a\":1}"} {
		require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(msg)))
		typ, got, err := c.Read(ctx)
		require.NoError(t, err)
		assert.Equal(t, websocket.MessageText, typ)
		assert.Equal(t, "Server received: "+msg, string(got))
	}
	require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))
}
