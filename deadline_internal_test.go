package wssafe

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// deadlineRecorder is a net.Conn that counts write-deadline renewals and
// discards what is written.
type deadlineRecorder struct {
	net.Conn // nil: only the methods below are called
	renewals atomic.Int32
	last     atomic.Int64 // the last write deadline, in UnixNano
}

func (c *deadlineRecorder) SetWriteDeadline(t time.Time) error {
	c.renewals.Add(1)
	c.last.Store(t.UnixNano())
	return nil
}

func (c *deadlineRecorder) Write(p []byte) (int, error) { return len(p), nil }

func TestWriteTickerRenewsOncePerQuarter(t *testing.T) {
	t.Parallel()
	clock := NewFakeClock(time.Now())
	ticks := newQuarterTicker(8*time.Second, clock)
	rec := &deadlineRecorder{}
	dc := newDeadlineConn(rec, 0, ticks, nil)
	// fire runs the tick due a quarter of WriteTimeout from now, if any.
	fire := func() int { return clock.AdvanceSync(2 * time.Second) }
	write := func() {
		_, err := dc.Write([]byte("x"))
		require.NoError(t, err)
	}

	start := time.Now()
	write()
	require.Equal(t, int32(1), rec.renewals.Load(), "the first write arms the deadline")
	assert.GreaterOrEqual(t, time.Unix(0, rec.last.Load()).Sub(start), 12*time.Second, "1.5 x WriteTimeout ahead")
	require.Equal(t, 0, clock.AdvanceSync(2*time.Second-time.Nanosecond))
	write()
	write()
	assert.Equal(t, int32(1), rec.renewals.Load(), "writes within the quarter do not renew")
	require.Equal(t, 1, clock.AdvanceSync(time.Nanosecond), "a tick a quarter of WriteTimeout later")
	write()
	assert.Equal(t, int32(2), rec.renewals.Load(), "the first write after a tick renews")

	// A quarter with a renewal keeps the ticker going; one without stops it.
	require.Equal(t, 1, fire())
	require.Equal(t, 1, fire())
	assert.Equal(t, 0, fire(), "an idle quarter stops the ticker")
	assert.False(t, ticks.running.Load())
	assert.Zero(t, clock.Timers())

	write()
	assert.Equal(t, int32(3), rec.renewals.Load(), "a write after the ticker stopped renews")
	assert.Equal(t, 1, fire(), "and restarts the ticker")
}

// Many connections renewing while the ticker starts and stops: the race
// detector checks the handoff, and once the ticker stops every connection
// renews at its next write.
func TestWriteTickerConcurrent(t *testing.T) {
	t.Parallel()
	ticks := newQuarterTicker(4*time.Millisecond, newRealClock()) // a tick per millisecond
	var wg sync.WaitGroup
	recs := make([]*deadlineRecorder, 8)
	dcs := make([]*deadlineConn, len(recs))
	for i := range recs {
		recs[i] = &deadlineRecorder{}
		dc := newDeadlineConn(recs[i], 0, ticks, nil)
		dcs[i] = dc
		wg.Go(func() {
			for j := range 2000 {
				if _, err := dc.Write([]byte("x")); err != nil {
					t.Error(err)
					return
				}
				if j%100 == 0 {
					time.Sleep(time.Millisecond) // let ticks happen between writes
				}
			}
		})
	}
	wg.Wait()
	require.Eventually(t, func() bool { return !ticks.running.Load() }, 5*time.Second, time.Millisecond,
		"the ticker stops once nobody writes")
	// The stopping tick moved the count: every connection renews at its
	// next write, however long after that it comes.
	for i, rec := range recs {
		before := rec.renewals.Load()
		assert.Greater(t, before, int32(1))
		_, err := dcs[i].Write([]byte("x"))
		require.NoError(t, err)
		assert.Equal(t, before+1, rec.renewals.Load())
	}
}
