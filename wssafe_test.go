package wssafe_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestEchoProtocol(t *testing.T) {
	t.Parallel()
	_, url := server(t, echo, nil)
	c := dial(t, url, nil)
	ctx := ctxT(t)
	for _, msg := range []string{"hello", "", "xin chào", `{"a":1}`, strings.Repeat("x", 20000)} {
		require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(msg)))
		typ, got, err := c.Read(ctx)
		require.NoError(t, err)
		assert.Equal(t, websocket.MessageText, typ)
		assert.Equal(t, "Server received: "+msg, string(got))
	}
	require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))
}

func TestNewRefusesBadOptions(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		h    wssafe.Handler
		opts *wssafe.Options
		want string
	}{
		"nil handler":       {nil, nil, "needs a Handler"},
		"bad origin":        {echo, &wssafe.Options{OriginPatterns: []string{"[a-"}}, "origin pattern"},
		"negative limit":    {echo, &wssafe.Options{ReadLimit: -1}, "ReadLimit"},
		"unknown type":      {echo, &wssafe.Options{Accept: []wssafe.MessageType{7}}, "unknown message type"},
		"bad proxy network": {echo, &wssafe.Options{TrustedProxies: []string{"10.0.0.1"}}, "CIDR"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ep, err := wssafe.New(tc.h, tc.opts)
			require.Error(t, err)
			assert.Nil(t, ep)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestNewDoesNotMutateOptions(t *testing.T) {
	t.Parallel()
	opts := &wssafe.Options{}
	_, err := wssafe.New(echo, opts)
	require.NoError(t, err)
	assert.Equal(t, &wssafe.Options{}, opts)
}

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

func TestPanicCloses1011AndSparesOthers(t *testing.T) {
	t.Parallel()
	log, logs := newLogger()
	_, url := server(t, wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		if m.Text() == "boom" {
			panic("kaboom")
		}
		return echo(ctx, s, m)
	}), &wssafe.Options{Logger: log})
	other := dial(t, url, nil)
	c := dial(t, url, nil)
	require.NoError(t, c.Write(ctxT(t), websocket.MessageText, []byte("boom")))
	ce := readClose(t, c)
	assert.Equal(t, websocket.StatusInternalError, ce.Code)
	assert.Equal(t, "internal error", ce.Reason)

	ctx := ctxT(t)
	require.NoError(t, other.Write(ctx, websocket.MessageText, []byte("hi")))
	_, got, err := other.Read(ctx)
	require.NoError(t, err)
	assert.Equal(t, "Server received: hi", string(got))

	out := logs.String()
	assert.Equal(t, 1, strings.Count(out, `"event":"panic"`), "stack logged once")
	assert.Contains(t, out, "kaboom")
	assert.Contains(t, out, "goroutine") // the stack
}

func TestReturnedErrorCloses1011WithoutDetails(t *testing.T) {
	t.Parallel()
	log, logs := newLogger()
	_, url := server(t, wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		return fmt.Errorf("db password=hunter2 rejected")
	}), &wssafe.Options{Logger: log})
	c := dial(t, url, nil)
	require.NoError(t, c.Write(ctxT(t), websocket.MessageText, []byte("x")))
	ce := readClose(t, c)
	assert.Equal(t, websocket.StatusInternalError, ce.Code)
	assert.Equal(t, "internal error", ce.Reason)
	assert.Contains(t, logs.String(), `"event":"handler_error"`)
	assert.Contains(t, logs.String(), `"level":"ERROR"`)
}

func TestUserCloseErrorKeepsItsCode(t *testing.T) {
	t.Parallel()
	_, url := server(t, wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		if m.Text() == "forbidden" {
			return fmt.Errorf("checking room: %w", wssafe.ErrForbidden)
		}
		return &wssafe.CloseError{Code: 4001, Reason: "room closed"}
	}), nil)
	c := dial(t, url, nil)
	require.NoError(t, c.Write(ctxT(t), websocket.MessageText, []byte("x")))
	ce := readClose(t, c)
	assert.Equal(t, websocket.StatusCode(4001), ce.Code)
	assert.Equal(t, "room closed", ce.Reason)

	c = dial(t, url, nil)
	require.NoError(t, c.Write(ctxT(t), websocket.MessageText, []byte("forbidden")))
	ce = readClose(t, c)
	assert.Equal(t, websocket.StatusCode(3003), ce.Code)
}

func TestMessageErrorRepliesAndKeepsSession(t *testing.T) {
	t.Parallel()
	_, url := server(t, wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		if m.Text() == "bad" {
			return &wssafe.MessageError{Code: "invalid_message", Field: "email", Message: "must be an email address"}
		}
		return echo(ctx, s, m)
	}), &wssafe.Options{InvalidMessages: wssafe.Rate{PerSecond: 0.001, Burst: 2}})
	c := dial(t, url, nil)
	ctx := ctxT(t)
	for range 2 {
		require.NoError(t, c.Write(ctx, websocket.MessageText, []byte("bad")))
		_, got, err := c.Read(ctx)
		require.NoError(t, err)
		assert.JSONEq(t, `{"type":"error","code":"invalid_message","field":"email","message":"must be an email address"}`, string(got))
	}
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte("ok")))
	_, got, err := c.Read(ctx)
	require.NoError(t, err)
	assert.Equal(t, "Server received: ok", string(got))

	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte("bad"))) // third strike
	ce := readClose(t, c)
	assert.Equal(t, websocket.StatusPolicyViolation, ce.Code)
	assert.Equal(t, "too many invalid messages", ce.Reason)
}

func TestStrictModeClosesAtFirstInvalidMessage(t *testing.T) {
	t.Parallel()
	_, url := server(t, wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		return &wssafe.MessageError{Code: "invalid_message"}
	}), &wssafe.Options{CloseOnInvalidMessage: true})
	c := dial(t, url, nil)
	require.NoError(t, c.Write(ctxT(t), websocket.MessageText, []byte("x")))
	assert.Equal(t, websocket.StatusPolicyViolation, readClose(t, c).Code)
}

func TestKeepaliveTimeoutCloses3008(t *testing.T) {
	t.Parallel()
	log, logs := newLogger()
	_, url := server(t, echo, &wssafe.Options{
		PingInterval: 50 * time.Millisecond,
		PongTimeout:  100 * time.Millisecond,
		Logger:       log,
	})
	pinged := make(chan struct{}, 1)
	c := dial(t, url, &websocket.DialOptions{OnPingReceived: func(context.Context, []byte) bool {
		select {
		case pinged <- struct{}{}:
		default:
		}
		return false // ignore the ping: no pong
	}})
	ce := readClose(t, c)
	assert.Equal(t, websocket.StatusCode(3008), ce.Code)
	assert.Equal(t, "timeout", ce.Reason)
	select {
	case <-pinged:
	default:
		t.Fatal("the server never pinged")
	}
	assert.Contains(t, logs.String(), `"event":"pong_timeout"`)
}

func TestKeepaliveKeepsAnsweringClientAlive(t *testing.T) {
	t.Parallel()
	closed := make(chan error, 1)
	_, url := server(t, echo, &wssafe.Options{
		PingInterval: 20 * time.Millisecond,
		PongTimeout:  200 * time.Millisecond,
		OnClose:      func(s *wssafe.Session, err error) { closed <- err },
	})
	pings := make(chan struct{}, 10)
	c := dial(t, url, &websocket.DialOptions{OnPingReceived: func(context.Context, []byte) bool {
		select {
		case pings <- struct{}{}:
		default:
		}
		return true
	}})
	ctx := c.CloseRead(ctxT(t))
	for range 5 { // several keepalive rounds pass without a close
		select {
		case <-pings:
		case <-ctx.Done():
			t.Fatal("connection closed during keepalive")
		}
	}
	c.Close(websocket.StatusNormalClosure, "")
	assert.Equal(t, websocket.StatusNormalClosure, wssafe.CloseStatus(<-closed))
}

func TestIdleTimeoutCloses3008(t *testing.T) {
	t.Parallel()
	_, url := server(t, echo, &wssafe.Options{IdleTimeout: 100 * time.Millisecond})
	c := dial(t, url, nil)
	ce := readClose(t, c)
	assert.Equal(t, websocket.StatusCode(3008), ce.Code)
	assert.Equal(t, "idle timeout", ce.Reason)
}

func TestMaxLifetimeCloses1001(t *testing.T) {
	t.Parallel()
	_, url := server(t, echo, &wssafe.Options{MaxLifetime: 100 * time.Millisecond})
	c := dial(t, url, nil)
	ce := readClose(t, c)
	assert.Equal(t, websocket.StatusGoingAway, ce.Code)
}

func TestWriteTimeoutDropsAPeerThatDoesNotRead(t *testing.T) {
	t.Parallel()
	log, logs := newLogger()
	writeErr := make(chan error, 1)
	closed := make(chan error, 1)
	_, url := server(t, wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		big := make([]byte, 1<<20)
		for {
			if err := s.Write(ctx, wssafe.MessageBinary, big); err != nil {
				writeErr <- err
				return err
			}
		}
	}), &wssafe.Options{
		WriteTimeout: 100 * time.Millisecond,
		OnClose:      func(s *wssafe.Session, err error) { closed <- err },
		Logger:       log,
	})
	c := dial(t, url, nil)
	require.NoError(t, c.Write(ctxT(t), websocket.MessageText, []byte("flood me"))) // and never read
	assert.ErrorIs(t, <-writeErr, wssafe.ErrWriteTimeout)
	assert.ErrorIs(t, <-closed, wssafe.ErrWriteTimeout)
	assert.Contains(t, logs.String(), `"event":"write_timeout"`)
}

func TestConcurrentWrites(t *testing.T) {
	t.Parallel()
	const writers, each = 20, 50
	_, url := server(t, wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					s.WriteText(ctx, fmt.Sprintf("w%02d-%03d-%s", w, i, strings.Repeat("z", 100)))
				}
			})
		}
		wg.Wait()
		return nil
	}), nil)
	c := dial(t, url, nil)
	ctx := ctxT(t)
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte("go")))
	next := make([]int, writers)
	for range writers * each {
		_, got, err := c.Read(ctx)
		require.NoError(t, err)
		var w, i int
		_, err = fmt.Sscanf(string(got[:7]), "w%02d-%03d", &w, &i)
		require.NoError(t, err, "frame interleaved: %q", got)
		require.Equal(t, next[w], i, "writer %d out of order", w)
		require.Len(t, got, 8+100)
		next[w]++
	}
}

func TestShutdownCloses1001ThenRefuses503(t *testing.T) {
	t.Parallel()
	started, returned := make(chan struct{}), make(chan struct{})
	ep, url := server(t, wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		defer close(returned)
		close(started)
		<-ctx.Done() // a callback still running at shutdown
		return ctx.Err()
	}), nil)
	c1 := dial(t, url, nil)
	c2 := dial(t, url, nil)
	require.NoError(t, c1.Write(ctxT(t), websocket.MessageText, []byte("block")))
	<-started

	shut := make(chan error, 1)
	go func() { shut <- ep.Shutdown(ctxT(t)) }()
	for _, c := range []*websocket.Conn{c1, c2} {
		ce := readClose(t, c)
		assert.Equal(t, websocket.StatusGoingAway, ce.Code)
	}
	require.NoError(t, <-shut)
	<-returned // Shutdown waited for the callback

	_, resp, err := websocket.Dial(ctxT(t), url, nil)
	require.Error(t, err)
	require.NotNil(t, resp)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.NotEmpty(t, resp.Header.Get("Retry-After"))
}

func TestShutdownHonoursDeadline(t *testing.T) {
	t.Parallel()
	opened := make(chan struct{})
	ep, url := server(t, echo, &wssafe.Options{OnOpen: func(*wssafe.Session) error { close(opened); return nil }})
	dialRaw(t, url, nil) // never answers the close handshake
	<-opened
	// Long enough that the margin Shutdown keeps (a tenth) leaves the
	// session time to end under -race on a loaded machine.
	const deadline = 500 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	err := ep.Shutdown(ctx)
	// The peer was dropped at the deadline's margin: every session has
	// ended, which is a successful shutdown.
	assert.NoError(t, err)
	assert.GreaterOrEqual(t, time.Since(start), deadline*8/10, "the close handshake waited for the peer")
	assert.Less(t, time.Since(start), deadline+defaultBound)
}

func TestShutdownReportsCallbackStillRunning(t *testing.T) {
	t.Parallel()
	started, release := make(chan struct{}), make(chan struct{})
	stuck := wssafe.HandlerFunc(func(context.Context, *wssafe.Session, wssafe.Message) error {
		close(started)
		<-release // ignores its context
		return nil
	})
	ep, url := server(t, stuck, nil)
	defer close(release)
	c := dial(t, url, nil)
	require.NoError(t, c.Write(ctxT(t), websocket.MessageText, []byte("hold")))
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	assert.ErrorIs(t, ep.Shutdown(ctx), context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 100*time.Millisecond+defaultBound)
}

func TestOriginCheck(t *testing.T) {
	t.Parallel()
	log, logs := newLogger()
	_, url := server(t, echo, &wssafe.Options{OriginPatterns: []string{"app.example.com"}, Logger: log})
	host := strings.TrimPrefix(url, "ws://")
	for _, tc := range []struct {
		origin string
		want   int
	}{
		{"", http.StatusSwitchingProtocols},                        // not a browser
		{"http://" + host, http.StatusSwitchingProtocols},          // same origin
		{"https://app.example.com", http.StatusSwitchingProtocols}, // allowed pattern
		{"https://evil.example", http.StatusForbidden},
		{"null", http.StatusForbidden},
		{"https://app.example.com.evil.example", http.StatusForbidden},
	} {
		h := http.Header{}
		if tc.origin != "" {
			h.Set("Origin", tc.origin)
		}
		c, resp, err := websocket.Dial(ctxT(t), url, &websocket.DialOptions{HTTPHeader: h})
		if tc.want == http.StatusSwitchingProtocols {
			require.NoError(t, err, tc.origin)
			c.Close(websocket.StatusNormalClosure, "")
		} else {
			require.Error(t, err, tc.origin)
		}
		assert.Equal(t, tc.want, resp.StatusCode, tc.origin)
	}
	assert.Contains(t, logs.String(), `"event":"origin_refused"`)
}

func TestInsecureSkipOriginCheckWarns(t *testing.T) {
	t.Parallel()
	log, logs := newLogger()
	_, url := server(t, echo, &wssafe.Options{InsecureSkipOriginCheck: true, Logger: log})
	c, _, err := websocket.Dial(ctxT(t), url, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://elsewhere.example"}}})
	require.NoError(t, err)
	c.Close(websocket.StatusNormalClosure, "")
	assert.Contains(t, logs.String(), `"event":"insecure_config"`)
}

func TestSessionAPI(t *testing.T) {
	t.Parallel()
	type key struct{}
	got := make(chan *wssafe.Session, 1)
	_, url := server(t, wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		s.Set(key{}, "v")
		assert.Same(t, s, wssafe.SessionFromContext(ctx))
		got <- s
		return s.WriteJSON(ctx, map[string]string{"id": s.ID()})
	}), &wssafe.Options{Subprotocols: []string{"chat.v1"}})
	c := dial(t, url+"/room/1", &websocket.DialOptions{
		Subprotocols: []string{"chat.v1"},
		HTTPHeader:   http.Header{"Authorization": {"Bearer abc"}, "X-Trace": {"t1"}},
	})
	ctx := ctxT(t)
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte("hi")))
	s := <-got
	_, reply, err := c.Read(ctx)
	require.NoError(t, err)
	assert.JSONEq(t, fmt.Sprintf(`{"id":%q}`, s.ID()), string(reply))
	assert.Len(t, s.ID(), 22)
	assert.Equal(t, "/room/1", s.Path())
	assert.Equal(t, "chat.v1", s.Subprotocol())
	assert.Equal(t, "t1", s.Header().Get("X-Trace"))
	assert.Empty(t, s.Header().Get("Authorization"), "credentials are not kept")
	assert.Equal(t, "v", s.Value(key{}))
	assert.NotEmpty(t, s.RemoteAddr())
	assert.False(t, s.StartedAt().IsZero())
	assert.NoError(t, context.Cause(s.Context()), "no cause while the session is open")

	c.Close(websocket.StatusNormalClosure, "")
	<-s.Context().Done()
	assert.Equal(t, websocket.StatusNormalClosure, wssafe.CloseStatus(context.Cause(s.Context())))
	assert.ErrorIs(t, s.WriteText(context.Background(), "late"), wssafe.ErrSessionClosed)
}

// Session.Close takes what a callback may return: nil, a sentinel, a
// *CloseError (its reason cut to what a close frame holds).
func TestSessionCloseFromAnotherGoroutine(t *testing.T) {
	t.Parallel()
	sessions := make(chan *wssafe.Session, 1)
	_, url := server(t, echo, &wssafe.Options{OnOpen: func(s *wssafe.Session) error {
		sessions <- s
		return nil
	}})
	long := strings.Repeat("x", 200)
	for _, tc := range []struct {
		err    error
		code   websocket.StatusCode
		reason string
	}{
		{&wssafe.CloseError{Code: 4002, Reason: "kicked"}, 4002, "kicked"},
		{nil, websocket.StatusNormalClosure, ""},
		{wssafe.ErrForbidden, wssafe.StatusForbidden, "forbidden"},
		{&wssafe.CloseError{Code: 4003, Reason: long}, 4003, long[:123]},
	} {
		c := dial(t, url, nil)
		s := <-sessions
		go s.Close(tc.err)
		ce := readClose(t, c)
		assert.Equal(t, tc.code, ce.Code, "%v", tc.err)
		assert.Equal(t, tc.reason, ce.Reason)
		<-s.Context().Done()
		s.Close(wssafe.ErrPanic) // the first cause wins
		code, _ := wssafe.CloseFrame(context.Cause(s.Context()))
		assert.Equal(t, tc.code, code, "the cause is Close's error")
	}
}

func TestOnOpenErrorCloses(t *testing.T) {
	t.Parallel()
	_, url := server(t, echo, &wssafe.Options{OnOpen: func(s *wssafe.Session) error { return wssafe.ErrForbidden }})
	c := dial(t, url, nil)
	assert.Equal(t, websocket.StatusCode(3003), readClose(t, c).Code)
}

func TestExpectedClosesLogAtDebug(t *testing.T) {
	t.Parallel()
	log, logs := newLogger()
	closed := make(chan struct{})
	_, url := server(t, echo, &wssafe.Options{Logger: log, OnClose: func(*wssafe.Session, error) { close(closed) }})
	c := dial(t, url, nil)
	ctx := ctxT(t)
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte("private payload")))
	_, _, err := c.Read(ctx)
	require.NoError(t, err)
	require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))
	<-closed
	out := logs.String()
	assert.Contains(t, out, `"level":"DEBUG","msg":"wssafe: session closed"`)
	assert.NotContains(t, out, `"level":"ERROR"`)
	assert.NotContains(t, out, `"level":"WARN"`)
	assert.NotContains(t, out, "private payload")
}

func TestCloseFrameTable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err    error
		code   wssafe.StatusCode
		reason string
	}{
		{nil, 1000, ""},
		{context.Canceled, 1000, ""},
		{wssafe.ErrMessageTooBig, 1009, "message too big"},
		{fmt.Errorf("%w: over 5 bytes", wssafe.ErrMessageTooBig), 1009, "message too big"},
		{wssafe.ErrInvalidUTF8, 1007, "invalid utf-8"},
		{wssafe.ErrUnsupportedType, 1003, "unsupported message type"},
		{wssafe.ErrRateLimited, 1008, "rate limit exceeded"},
		{wssafe.ErrSlowConsumer, 1008, "slow consumer"},
		{wssafe.ErrPongTimeout, 3008, "timeout"},
		{wssafe.ErrShutdown, 1001, "going away"},
		{wssafe.ErrInvalidToken, 3000, "invalid token"},
		{wssafe.ErrTokenExpired, 3000, "token expired"},
		{wssafe.ErrForbidden, 3003, "forbidden"},
		{wssafe.ErrAuthTimeout, 3008, "authentication timeout"},
		{fmt.Errorf("wrapped: %w", wssafe.ErrPanic), 1011, "internal error"},
		{errors.New("secret detail"), 1011, "internal error"},
		{fmt.Errorf("x: %w", &wssafe.CloseError{Code: 4000, Reason: "r"}), 4000, "r"},
	} {
		code, reason := wssafe.CloseFrame(tc.err)
		assert.Equal(t, tc.code, code, "%v", tc.err)
		assert.Equal(t, tc.reason, reason, "%v", tc.err)
	}
	assert.True(t, wssafe.IsExpectedClose(wssafe.ErrShutdown))
	assert.False(t, wssafe.IsExpectedClose(wssafe.ErrPanic))
	assert.Equal(t, wssafe.StatusCode(-1), wssafe.CloseStatus(errors.New("x")))
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
