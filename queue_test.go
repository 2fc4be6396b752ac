package wssafe_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wssafe/wssafe"
)

// Messages queued with Send and a Write that follows them from the same
// goroutine arrive in order.
func TestSendThenWriteInOrder(t *testing.T) {
	t.Parallel()
	h := wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		for i := range 50 {
			if err := s.Send(wssafe.MessageText, fmt.Appendf(nil, "q%d", i)); err != nil {
				return err
			}
		}
		return s.WriteText(ctx, "w")
	})
	_, url := server(t, h, nil)
	c := dialWith(t, url, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for range 3 {
		require.NoError(t, c.Write(ctx, websocket.MessageText, []byte("go")))
		for i := range 50 {
			_, p, err := c.Read(ctx)
			require.NoError(t, err)
			require.Equal(t, fmt.Sprintf("q%d", i), string(p))
		}
		_, p, err := c.Read(ctx)
		require.NoError(t, err)
		require.Equal(t, "w", string(p))
	}
}

func TestSendErrors(t *testing.T) {
	t.Parallel()
	sessions := make(chan *wssafe.Session, 1)
	h := wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		err := s.Send(wssafe.MessageBinary, make([]byte, 2048))
		return s.WriteText(ctx, fmt.Sprint(errors.Is(err, wssafe.ErrSendTooLarge)))
	})
	_, url := server(t, h, &wssafe.Options{SendQueueBytes: 1024,
		OnOpen: func(s *wssafe.Session) error { sessions <- s; return nil }})
	c := dialWith(t, url, nil)
	s := <-sessions
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte("x")))
	_, p, err := c.Read(ctx)
	require.NoError(t, err)
	assert.Equal(t, "true", string(p), "an oversized message is refused, the session goes on")

	require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))
	require.Eventually(t, func() bool { return context.Cause(s.Context()) != nil }, 5*time.Second, 10*time.Millisecond)
	assert.ErrorIs(t, s.Send(wssafe.MessageText, []byte("late")), wssafe.ErrSessionClosed)
}

// shrinkFirstConn makes the first accepted connection's send buffer small,
// so that a peer that does not read blocks the server's writes after a few
// KiB instead of the megabytes the kernel would otherwise absorb.
type shrinkFirstConn struct {
	net.Listener
	once sync.Once
}

func (l *shrinkFirstConn) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.once.Do(func() { c.(*net.TCPConn).SetWriteBuffer(4096) })
	}
	return c, err
}

// A peer that stops reading is cut as a slow consumer while broadcasts to
// 100 other sessions go on and reach every one of them.
func TestSlowConsumerCutDuringBroadcast(t *testing.T) {
	t.Parallel()
	const fastN, size = 100, 64 << 10
	logger, logs := newLogger()
	ep, err := wssafe.NewWithHooks(echo, &wssafe.Options{SendQueueMessages: 4, SendQueueBytes: 8 * size, Logger: logger}, wssafe.Hooks{})
	require.NoError(t, err)
	url := serveOn(t, ep, func(l net.Listener) net.Listener { return &shrinkFirstConn{Listener: l} })

	// The slow consumer connects first, so it gets the small send buffer,
	// and never reads until it has been cut.
	slow := dialWith(t, url, nil)
	slow.SetReadLimit(2 * size)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	received := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for range fastN {
		c := dialWith(t, url, nil)
		c.SetReadLimit(2 * size)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, p, err := c.Read(ctx); err != nil || len(p) != size {
					return
				}
				select {
				case received <- struct{}{}:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	require.Eventually(t, func() bool { return len(ep.Hub().Sessions()) == fastN+1 }, 5*time.Second, 10*time.Millisecond)

	// Broadcast until the slow consumer is cut (its kernel buffers, then
	// its queue, fill up), and a few rounds more; every round must reach
	// every fast session.
	payload := make([]byte, size)
	cut := -1
	for round := 0; cut < 0 || round < cut+3; round++ {
		require.Less(t, round, 200, "the slow consumer was never cut")
		n := ep.Hub().Broadcast(wssafe.MessageBinary, payload, nil)
		if cut < 0 && n == fastN {
			cut = round
		}
		want := fastN + 1
		if cut >= 0 {
			want = fastN
		}
		require.Equal(t, want, n, "round %d", round)
		for range fastN {
			select {
			case <-received:
			case <-ctx.Done():
				t.Fatalf("round %d: the broadcast did not reach every fast session", round)
			}
		}
	}
	assert.Positive(t, cut, "the first broadcast reaches everyone")

	// Once it reads, the slow consumer finds the close frame behind what the
	// kernel had buffered.
	ce := readClose(t, slow)
	assert.Equal(t, websocket.StatusPolicyViolation, ce.Code)
	assert.Equal(t, "slow consumer", ce.Reason)
	require.Eventually(t, func() bool { return len(ep.Hub().Sessions()) == fastN }, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, uint64(1), ep.Stats().LimitHits[wssafe.EventSlowConsumer])
	assert.Equal(t, 1, strings.Count(logs.String(), `"event":"slow_consumer"`))
}

// A Write stuck behind a queue that the peer is not draining gives up when
// its context ends, and is then never written; the session goes on.
func TestWriteBehindBlockedQueueAbandoned(t *testing.T) {
	t.Parallel()
	const size = 64 << 10
	errs := make(chan error, 1)
	h := wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		if m.Text() != "fill" {
			return echo(ctx, s, m)
		}
		for range 8 {
			if err := s.Send(wssafe.MessageBinary, make([]byte, size)); err != nil {
				return err
			}
		}
		wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		errs <- s.WriteText(wctx, "abandoned")
		return nil
	})
	ep, err := wssafe.New(h, &wssafe.Options{Logger: must(newLogger())})
	require.NoError(t, err)
	c := dialWith(t, serveOn(t, ep, func(l net.Listener) net.Listener { return &shrinkFirstConn{Listener: l} }), nil)
	c.SetReadLimit(size)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte("fill")))
	assert.ErrorIs(t, <-errs, context.DeadlineExceeded)
	for range 8 {
		_, p, err := c.Read(ctx)
		require.NoError(t, err)
		require.Len(t, p, size)
	}
	echoOnce(t, c, "after")
}

// An idle session owns no goroutine: the queue's writer exits once the
// queue is empty. (Not parallel: it counts goroutines.)
func TestQueueWriterExitsWhenDrained(t *testing.T) {
	ep, url := server(t, echo, nil)
	var conns []*websocket.Conn
	for range 5 {
		conns = append(conns, dialWith(t, url, nil))
	}
	require.Eventually(t, func() bool { return len(ep.Hub().Sessions()) == 5 }, 5*time.Second, 10*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for range 3 {
		require.Equal(t, 5, ep.Hub().Broadcast(wssafe.MessageText, []byte("news"), nil))
	}
	for _, c := range conns {
		for range 3 {
			_, p, err := c.Read(ctx)
			require.NoError(t, err)
			require.Equal(t, "news", string(p))
		}
	}
	require.Eventually(t, func() bool { return countGoroutines("(*Session).drain") == 0 }, 5*time.Second, 10*time.Millisecond)
}

// countGoroutines counts the goroutines whose stack mentions fn.
func countGoroutines(fn string) int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), fn)
}

// TestSendTooLargeIsTheServersError: a message too large for the send
// queue is the server's own, not the peer's: Send returns ErrSendTooLarge,
// not ErrMessageTooBig, and a callback that returns it closes 1011 with a
// handler_error log line, never 1009.
func TestSendTooLargeIsTheServersError(t *testing.T) {
	t.Parallel()
	errs := make(chan error, 1)
	h := wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		err := s.Send(wssafe.MessageText, make([]byte, 2048))
		errs <- err
		return err
	})
	logger, logs := newLogger()
	ep, url := server(t, h, &wssafe.Options{SendQueueBytes: 1024, Logger: logger})
	c := dial(t, url, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte("x")))

	err := <-errs
	assert.ErrorIs(t, err, wssafe.ErrSendTooLarge)
	assert.NotErrorIs(t, err, wssafe.ErrMessageTooBig, "the peer sent nothing too big")
	assert.Equal(t, wssafe.StatusInternalError, readClose(t, c).Code)
	waitForLog(t, logs, `"event":"handler_error"`)
	require.Eventually(t, func() bool { return ep.Stats().Closed[wssafe.StatusInternalError] == 1 },
		5*time.Second, 10*time.Millisecond)
	assert.Zero(t, ep.Stats().Closed[wssafe.StatusMessageTooBig])
	code, reason := wssafe.CloseFrame(err)
	assert.Equal(t, wssafe.StatusInternalError, code)
	assert.Equal(t, "internal error", reason)
	assert.False(t, errors.Is(wssafe.ErrSendTooLarge, wssafe.ErrMessageTooBig))
}
