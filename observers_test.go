package wssafe_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wssafe/wssafe"
)

// What the metrics adapters need from the core: a fan-out of Observers,
// the handshake's duration, a message's size, the handshakes in progress
// and the messages a send queue dropped.

func TestObserversFanOut(t *testing.T) {
	t.Parallel()
	assert.Nil(t, wssafe.Observers(), "none: no Observer, no cost")
	assert.Nil(t, wssafe.Observers(nil, nil))

	var got []string
	a := func(o wssafe.Observation) { got = append(got, "a:"+o.Kind.String()) }
	b := func(o wssafe.Observation) { got = append(got, "b:"+o.Kind.String()) }
	wssafe.Observers(nil, a)(wssafe.Observation{Kind: wssafe.Panicked})
	assert.Equal(t, []string{"a:panicked"}, got)

	got = nil
	wssafe.Observers(a, nil, b)(wssafe.Observation{Kind: wssafe.LimitHit})
	assert.Equal(t, []string{"a:limit_hit", "b:limit_hit"}, got, "each, in order")
}

// Both observers of a real endpoint see every observation.
func TestObserversOnEndpoint(t *testing.T) {
	t.Parallel()
	var mine, metrics recorder
	_, url := server(t, echo, &wssafe.Options{Observer: wssafe.Observers(metrics.Observe, mine.Observe)})
	c := dial(t, url, nil)
	echoOnce(t, c, "hi")
	require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))
	require.Eventually(t, func() bool { return tally(mine.all())["session_closed"] == 1 }, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, tally(mine.all()), tally(metrics.all()))
	assert.Equal(t, 1, tally(mine.all())["message_handled"])
}

// A handshake's outcome carries the time since ServeHTTP began: accepted,
// refused by a guard after authentication, or refused by authentication.
func TestHandshakeDurationObserved(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	var rec recorder
	o := f.options(func(a *wssafe.AuthOptions) {
		a.Sources = wssafe.FromHeader
		a.Authorize = func(_ context.Context, subject string, _ jwt.Token) error {
			f.clock.Advance(2 * time.Second) // the handshake's work, on the endpoint's clock
			if subject == "mallory" {
				return errors.New("banned")
			}
			return nil
		}
	})
	o.MaxConnsPerSubject = 1
	o.Observer = rec.Observe
	_, url := f.server(t, echo, o)

	dial(t, url, bearer(f.token(nil)))
	assert.Equal(t, http.StatusTooManyRequests, handshake(t, url, bearer(f.token(nil))).StatusCode)
	assert.Equal(t, http.StatusForbidden, handshake(t, url, bearer(f.token(claims{"sub": "mallory"}))).StatusCode)

	got := map[string]time.Duration{}
	for _, o := range rec.all() {
		switch o.Kind {
		case wssafe.HandshakeAccepted, wssafe.HandshakeRefused, wssafe.AuthFailed:
			got[o.Kind.String()+"/"+o.Reason] = o.Duration
		}
	}
	assert.Equal(t, map[string]time.Duration{
		"handshake_accepted/":                  2 * time.Second,
		"handshake_refused/subject_conn_limit": 2 * time.Second,
		"auth_failed/forbidden":                2 * time.Second,
	}, got)
}

// MessageHandled carries the payload's size in bytes.
func TestMessageSizeObserved(t *testing.T) {
	t.Parallel()
	var rec recorder
	_, url := server(t, echo, &wssafe.Options{Observer: rec.Observe})
	c := dial(t, url, nil)
	echoOnce(t, c, "héllo") // 6 bytes
	echoOnce(t, c, "")
	require.Eventually(t, func() bool { return tally(rec.all())["message_handled"] == 2 }, 5*time.Second, 5*time.Millisecond)
	var sizes []int
	for _, o := range rec.all() {
		if o.Kind == wssafe.MessageHandled {
			sizes = append(sizes, o.Size)
		}
	}
	assert.Equal(t, []int{6, 0}, sizes)
}

// Stats.Handshaking counts the handshakes being served, and only them.
func TestStatsHandshaking(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	inside, release := make(chan struct{}), make(chan struct{})
	o := f.options(func(a *wssafe.AuthOptions) {
		a.Sources = wssafe.FromHeader
		a.Authorize = func(context.Context, string, jwt.Token) error {
			inside <- struct{}{}
			<-release
			return nil
		}
	})
	ep, url := f.server(t, echo, o)
	assert.Zero(t, ep.Stats().Handshaking)

	tok := f.token(nil)
	dialed := make(chan *websocket.Conn)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, _, err := websocket.Dial(ctx, url, bearer(tok))
		if err != nil {
			c = nil
		}
		dialed <- c
	}()
	<-inside
	st := ep.Stats()
	assert.Equal(t, 1, st.Handshaking)
	assert.Zero(t, st.Active, "not accepted yet")
	close(release)
	c := <-dialed
	require.NotNil(t, c)
	defer c.CloseNow()
	require.Eventually(t, func() bool { return ep.Stats().Handshaking == 0 }, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, 1, ep.Stats().Active)
}

// The messages still queued when a slow consumer is cut are counted as
// dropped: every message Send accepted is either written or dropped.
func TestStatsSendDropped(t *testing.T) {
	t.Parallel()
	const size = 16 << 10
	sessions := make(chan *wssafe.Session, 1)
	ep, err := wssafe.NewWithHooks(echo, &wssafe.Options{
		SendQueueMessages: 4, SendQueueBytes: 8 * size,
		OnOpen: func(s *wssafe.Session) error { sessions <- s; return nil },
	}, wssafe.Hooks{})
	require.NoError(t, err)
	url := serveOn(t, ep, func(l net.Listener) net.Listener { return &shrinkFirstConn{Listener: l} })
	c := dial(t, url, nil) // never reads until cut
	s := <-sessions

	payload := make([]byte, size)
	queued := uint64(0)
	for {
		require.Less(t, queued, uint64(10000), "never cut")
		if err := s.Send(wssafe.MessageBinary, payload); err != nil {
			require.ErrorIs(t, err, wssafe.ErrSlowConsumer)
			break
		}
		queued++
	}
	c.CloseNow()
	require.Eventually(t, func() bool {
		st := ep.Stats()
		return st.Active == 0 && st.SendDropped+uint64(st.Traffic.MessagesOut) == queued
	}, 5*time.Second, 5*time.Millisecond)
	st := ep.Stats()
	assert.GreaterOrEqual(t, st.SendDropped, uint64(3), "the queue was full when the session was cut")
	assert.Equal(t, uint64(1), st.LimitHits[wssafe.EventSlowConsumer])
}
