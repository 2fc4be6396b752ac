package wssafe_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wssafe/wssafe"
)

func TestOversizedMessageCloses1009(t *testing.T) {
	t.Parallel()
	log, logs := newLogger()
	causes := make(chan error, 8)
	_, url := server(t, echo, &wssafe.Options{ReadLimit: 1024, Logger: log,
		OnClose: func(_ *wssafe.Session, err error) { causes <- err }})

	t.Run("single frame", func(t *testing.T) {
		c := dial(t, url, nil)
		require.NoError(t, c.Write(ctxT(t), websocket.MessageText, []byte(strings.Repeat("a", 1025))))
		ce := readClose(t, c)
		assert.Equal(t, websocket.StatusMessageTooBig, ce.Code)
		err := <-causes
		assert.ErrorIs(t, err, wssafe.ErrMessageTooBig)
		assert.ErrorContains(t, err, "1024 bytes", "the cause names the limit in force")
	})
	t.Run("fragmented", func(t *testing.T) {
		c := dial(t, url, nil)
		w, err := c.Writer(ctxT(t), websocket.MessageText)
		require.NoError(t, err)
		for range 4 { // 4 frames of 300 bytes: each small, together over the limit
			if _, err := w.Write([]byte(strings.Repeat("b", 300))); err != nil {
				break // the server may already have closed
			}
		}
		w.Close()
		ce := readClose(t, c)
		assert.Equal(t, websocket.StatusMessageTooBig, ce.Code)
	})
	t.Run("at the limit passes", func(t *testing.T) {
		c := dial(t, url, nil)
		ctx := ctxT(t)
		require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(strings.Repeat("c", 1024))))
		_, got, err := c.Read(ctx)
		require.NoError(t, err)
		assert.Len(t, got, len("Server received: ")+1024)
	})
	waitForLog(t, logs, `"event":"message_too_big"`)
}

func TestInvalidUTF8Closes1007(t *testing.T) {
	t.Parallel()
	log, logs := newLogger()
	_, url := server(t, echo, &wssafe.Options{Logger: log})

	t.Run("whole message", func(t *testing.T) {
		c := dial(t, url, nil)
		require.NoError(t, c.Write(ctxT(t), websocket.MessageText, []byte("bad \xff\xfe")))
		ce := readClose(t, c)
		assert.Equal(t, websocket.StatusInvalidFramePayloadData, ce.Code)
		assert.Equal(t, "invalid utf-8", ce.Reason)
	})
	t.Run("invalid across fragments", func(t *testing.T) {
		c := dialRaw(t, url, nil)
		require.NoError(t, c.frame(false, opText, []byte("ok \xe1")))
		require.NoError(t, c.frame(true, opCont, []byte("\x28\xa1"))) // broken 3-byte sequence
		code, _ := c.closeCode(5 * time.Second)
		assert.Equal(t, 1007, code)
	})
	t.Run("valid rune split across fragments passes", func(t *testing.T) {
		c := dialRaw(t, url, nil)
		msg := []byte("chào") // "à" is 2 bytes: split it
		i := strings.Index(string(msg), "à") + 1
		require.NoError(t, c.frame(false, opText, msg[:i]))
		require.NoError(t, c.frame(true, opCont, msg[i:]))
		f, err := c.readFrame()
		require.NoError(t, err)
		assert.Equal(t, "Server received: chào", string(f.payload))
	})
	assert.Contains(t, logs.String(), `"event":"invalid_utf8"`)
	assert.NotContains(t, logs.String(), "bad ")
}

func TestSkipUTF8CheckIsExplicit(t *testing.T) {
	t.Parallel()
	got := make(chan []byte, 1)
	_, url := server(t, wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		got <- append([]byte(nil), m.Data...)
		return nil
	}), &wssafe.Options{InsecureSkipUTF8Check: true})
	c := dial(t, url, nil)
	require.NoError(t, c.Write(ctxT(t), websocket.MessageText, []byte{0xff}))
	assert.Equal(t, []byte{0xff}, <-got)
}

func TestRefusedMessageTypeCloses1003(t *testing.T) {
	t.Parallel()
	log, logs := newLogger()
	_, url := server(t, echo, &wssafe.Options{Accept: []wssafe.MessageType{wssafe.MessageText}, Logger: log})
	c := dial(t, url, nil)
	require.NoError(t, c.Write(ctxT(t), websocket.MessageBinary, []byte{1, 2, 3}))
	ce := readClose(t, c)
	assert.Equal(t, websocket.StatusUnsupportedData, ce.Code)
	assert.Contains(t, logs.String(), `"event":"unsupported_type"`)
}

func TestEndlessFragmentsClose1008(t *testing.T) {
	t.Parallel()
	log, logs := newLogger()
	_, url := server(t, echo, &wssafe.Options{MessageTimeout: 300 * time.Millisecond, Logger: log})
	c := dialRaw(t, url, nil)
	require.NoError(t, c.frame(false, opText, []byte("start")))
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // a trickle of empty continuation frames, never fin
		defer close(done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if c.frame(false, opCont, nil) != nil {
					return
				}
			}
		}
	}()
	start := time.Now()
	code, reason := c.closeCode(5 * time.Second)
	close(stop)
	<-done
	assert.Equal(t, 1008, code)
	assert.Equal(t, "message timeout", reason)
	assert.Less(t, time.Since(start), 3*time.Second)
	assert.Contains(t, logs.String(), `"event":"message_timeout"`)
}

func TestProtocolViolationEndsSessionPromptly(t *testing.T) {
	t.Parallel()
	log, logs := newLogger()
	closed := make(chan error, 1)
	_, url := server(t, echo, &wssafe.Options{Logger: log, OnClose: func(s *wssafe.Session, err error) { closed <- err }})
	c := dialRaw(t, url, nil)
	// An unmasked client frame: RFC 6455 section 5.1 requires the server to
	// fail the connection.
	_, err := c.nc.Write([]byte{0x81, 0x02, 'h', 'i'})
	require.NoError(t, err)
	select {
	case err := <-closed:
		assert.ErrorIs(t, err, wssafe.ErrProtocol)
	case <-time.After(5 * time.Second):
		t.Fatal("session still open after a protocol violation")
	}
	assert.Contains(t, logs.String(), `"event":"protocol_error"`)
}

func TestPingFloodCloses1008(t *testing.T) {
	t.Parallel()
	log, logs := newLogger()
	_, url := server(t, echo, &wssafe.Options{PingRate: wssafe.Rate{PerSecond: 1, Burst: 5}, Logger: log})
	other := dial(t, url, nil) // an unrelated session must not notice

	c := dialRaw(t, url, nil)
	for range 50 {
		if c.frame(true, opPing, []byte("p")) != nil {
			break
		}
	}
	code, reason := c.closeCode(5 * time.Second)
	assert.Equal(t, 1008, code)
	assert.Equal(t, "ping rate exceeded", reason)
	assert.Contains(t, logs.String(), `"event":"ping_flood"`)

	ctx := ctxT(t)
	require.NoError(t, other.Write(ctx, websocket.MessageText, []byte("still here")))
	_, got, err := other.Read(ctx)
	require.NoError(t, err)
	assert.Equal(t, "Server received: still here", string(got))
}

func TestPingsWithinRateAreAnswered(t *testing.T) {
	t.Parallel()
	_, url := server(t, echo, nil)
	c := dial(t, url, nil)
	ctx := ctxT(t)
	c.CloseRead(ctx)
	for range 5 {
		require.NoError(t, c.Ping(ctx))
	}
}

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
