package wssafe_test

import (
	"context"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe"
)

// Unsolicited pongs are limited like pings: a flood closes 1008, is
// logged and counted, and leaves other sessions alone.
func TestPongFloodCloses1008(t *testing.T) {
	t.Parallel()
	logger, logs := newLogger()
	ep, url := server(t, echo, &wssafe.Options{Logger: logger})
	other := dial(t, url, nil)

	c := dialRaw(t, url, nil)
	for range 10 * wssafe.DefaultPingBurst {
		if c.frame(true, opPong, []byte("unasked")) != nil {
			break
		}
	}
	code, reason := c.closeCode(5 * time.Second)
	assert.Equal(t, 1008, code)
	assert.Equal(t, "pong rate exceeded", reason)
	waitForLog(t, logs, `"event":"pong_flood"`)
	require.Eventually(t, func() bool { return ep.Stats().LimitHits[wssafe.EventPongFlood] == 1 },
		5*time.Second, 5*time.Millisecond, "counted once as a limit hit")
	echoOnce(t, other, "still here")
}

// Pongs within the budget are harmless, and use a budget of their own:
// a peer that spends its ping burst may still send pongs.
func TestPongsWithinRateAccepted(t *testing.T) {
	t.Parallel()
	_, url := server(t, echo, &wssafe.Options{PingRate: wssafe.Rate{PerSecond: 1.0 / 86400, Burst: 3}})
	c := dialRaw(t, url, nil)
	for range 3 {
		require.NoError(t, c.frame(true, opPing, []byte("p")))
		require.NoError(t, c.frame(true, opPong, []byte("q")))
	}
	require.NoError(t, c.frame(true, opText, []byte("after")))
	for {
		f, err := c.readFrame()
		require.NoError(t, err)
		if f.op == opPong {
			continue
		}
		require.Equal(t, byte(opText), f.op, "got %q", f.payload)
		assert.Equal(t, "Server received: after", string(f.payload))
		return
	}
}

// The pong that answers the server's own keepalive ping is never counted,
// however tight PingRate is: here the pong budget is one for the day, and
// ten keepalive rounds pass.
func TestKeepalivePongsNeverTripThePongLimit(t *testing.T) {
	t.Parallel()
	ep, url := server(t, echo, &wssafe.Options{
		PingInterval: 10 * time.Millisecond,
		PongTimeout:  2 * time.Second,
		PingRate:     wssafe.Rate{PerSecond: 1.0 / 86400, Burst: 1},
	})
	pinged := make(chan struct{}, 100)
	c := dial(t, url, &websocket.DialOptions{OnPingReceived: func(context.Context, []byte) bool {
		pinged <- struct{}{}
		return true // the client answers with a pong
	}})
	ctx := ctxT(t)
	msgs := make(chan string, 1)
	go func() {
		defer close(msgs)
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				return
			}
			msgs <- string(b)
		}
	}()
	for i := range 10 {
		select {
		case <-pinged:
		case <-ctx.Done():
			t.Fatalf("only %d keepalive pings", i)
		}
	}
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte("alive")))
	assert.Equal(t, "Server received: alive", <-msgs)
	assert.Zero(t, ep.Stats().LimitHits[wssafe.EventPongFlood])
	c.Close(websocket.StatusNormalClosure, "")
	for range msgs {
	}
}
