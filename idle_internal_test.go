package wssafe

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// serveWhole runs the deadlineConn's side of n messages that each arrive
// whole in one socket read, as the serve loop does: wait, read, begin, end.
func serveWhole(t *testing.T, dc *deadlineConn, n int) {
	t.Helper()
	buf := make([]byte, 4096)
	for range n {
		dc.awaitMessage()
		_, err := dc.Read(buf)
		require.NoError(t, err)
		dc.beginMessage()
		dc.endMessage()
	}
}

// A busy session moves its idle deadline once per quarter of IdleTimeout,
// not once per message, and every move leaves at least IdleTimeout.
func TestIdleDeadlineRenewedOncePerQuarter(t *testing.T) {
	t.Parallel()
	for _, msgTimeout := range []time.Duration{10 * time.Second, -1} {
		clock := NewFakeClock(time.Now())
		idle := newQuarterTicker(8*time.Second, clock)
		text := wireFrame(0x1, 5, true)
		sc := &scriptConn{}
		for range 300 {
			sc.reads = append(sc.reads, text)
		}
		dc := newDeadlineConn(sc, msgTimeout, nil, idle)

		start := time.Now()
		serveWhole(t, dc, 100)
		require.Len(t, sc.set, 1, "the first wait arms the idle deadline, the next 99 messages touch nothing")
		ahead := sc.set[0].Sub(start)
		assert.GreaterOrEqual(t, ahead, 10*time.Second, "1.25 x IdleTimeout ahead")
		assert.Less(t, ahead, 11*time.Second)

		require.Equal(t, 1, clock.AdvanceSync(2*time.Second), "the ticker ticks a quarter of IdleTimeout later")
		serveWhole(t, dc, 100)
		require.Len(t, sc.set, 2, "after a tick, one renewal for the next 100 messages")
		assert.True(t, sc.set[1].After(sc.set[0]))
		assert.True(t, dc.idleExpired(), "the deadline in force is the idle one")
	}
}

// While a message is open the idle deadline does not apply: a message that
// needs another read gets its own deadline (none without MessageTimeout),
// and once it has ended the idle deadline is back.
func TestIdleDeadlineOffWhileAMessageIsOpen(t *testing.T) {
	t.Parallel()
	for _, msgTimeout := range []time.Duration{10 * time.Second, -1} {
		idle := newQuarterTicker(time.Second, NewFakeClock(time.Now()))
		first := wireFrame(0x1, 3, true)
		first[0] &^= 0x80 // not final
		cont := wireFrame(0x0, 100, true)
		sc := &scriptConn{reads: [][]byte{first, cont[:10], cont[10:], wireFrame(0x1, 1, true)}}
		dc := newDeadlineConn(sc, msgTimeout, nil, idle)
		buf := make([]byte, 4096)
		read := func() {
			t.Helper()
			_, err := dc.Read(buf)
			require.NoError(t, err)
		}

		dc.awaitMessage()
		read() // the first frame, whole
		require.Len(t, sc.set, 1)
		idleAt := sc.set[0]
		dc.beginMessage()
		read() // the message needs another read: its deadline replaces the idle one
		require.Len(t, sc.set, 2)
		if msgTimeout > 0 {
			assert.Greater(t, time.Until(sc.set[1]), 5*time.Second, "the message's deadline, not the idle one")
		} else {
			assert.True(t, sc.set[1].IsZero(), "no deadline for an open message without MessageTimeout")
		}
		assert.False(t, dc.idleExpired())
		read()
		dc.endMessage()
		dc.awaitMessage()
		read() // between messages again
		require.Len(t, sc.set, 3)
		assert.Equal(t, idleAt, sc.set[2], "the idle deadline is back, unmoved")
		assert.True(t, dc.idleExpired())
	}
}
