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

// sendExpectClose sends msg and requires the session to end with 1008
// "rate limit exceeded".
func sendExpectClose(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(msg)))
	ce := readClose(t, c)
	assert.Equal(t, websocket.StatusPolicyViolation, ce.Code)
	assert.Equal(t, "rate limit exceeded", ce.Reason)
}

func TestMessageRatePerSession(t *testing.T) {
	t.Parallel()
	clock := newFakeClock() // frozen: no refill unless advanced
	logger, logs := newLogger()
	opts := &wssafe.Options{MessageRate: wssafe.Rate{PerSecond: 1, Burst: 3}, Logger: logger}
	ep, url := serverWith(t, echo, opts, wssafe.Hooks{Clock: clock})
	c := dialWith(t, url, nil)
	for _, m := range []string{"1", "2", "3"} {
		echoOnce(t, c, m)
	}
	clock.Advance(time.Second)
	echoOnce(t, c, "refilled")

	// Another session has its own budget.
	other := dialWith(t, url, nil)
	echoOnce(t, other, "mine")

	sendExpectClose(t, c, "over")
	assert.Contains(t, logs.String(), `"event":"message_rate_exceeded"`)
	echoOnce(t, other, "unaffected")
	assert.Equal(t, uint64(1), ep.Stats().LimitHits[wssafe.EventMessageRate])
}

// Two sessions of one subject share one budget; a third subject's session
// is unaffected.
func TestSubjectMessageBudgetShared(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	clock := f.clock
	opts := headerAuth(f)
	opts.SubjectMessageRate = wssafe.Rate{PerSecond: 1, Burst: 4}
	ep, url := f.server(t, echo, opts)
	a1 := dialWith(t, url, f.as("alice"))
	a2 := dialWith(t, url, f.as("alice"))
	bob := dialWith(t, url, f.as("bob"))

	echoOnce(t, a1, "a1-1")
	echoOnce(t, a1, "a1-2")
	echoOnce(t, a2, "a2-1")
	echoOnce(t, a2, "a2-2")
	for _, m := range []string{"b1", "b2", "b3", "b4"} {
		echoOnce(t, bob, m)
	}
	// Alice's fifth message, from either tab, is over the shared budget.
	sendExpectClose(t, a2, "a2-3")
	require.Eventually(t, func() bool { return len(ep.Hub().BySubject("alice")) == 1 }, 5*time.Second, 10*time.Millisecond)

	// The other tab is still open and gets the refill.
	clock.Advance(time.Second)
	echoOnce(t, a1, "a1-3")
	assert.Equal(t, uint64(1), ep.Stats().LimitHits[wssafe.EventSubjectRate])
}

func TestByteRate(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	opts := &wssafe.Options{ReadLimit: 1024, ByteRate: wssafe.Rate{PerSecond: 100}}
	ep, url := serverWith(t, echo, opts, wssafe.Hooks{Clock: clock})
	c := dialWith(t, url, nil)
	echoOnce(t, c, strings.Repeat("a", 1000)) // the burst defaults to ReadLimit
	echoOnce(t, c, strings.Repeat("b", 24))
	clock.Advance(time.Second)
	echoOnce(t, c, strings.Repeat("c", 100))
	sendExpectClose(t, c, "d")
	assert.Equal(t, uint64(1), ep.Stats().LimitHits[wssafe.EventByteRate])
}
