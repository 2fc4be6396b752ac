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

// manualTimers stands in for time.AfterFunc: a test fires the pending
// callback when it chooses.
type manualTimers struct {
	mu      sync.Mutex
	pending []func()
	after   []time.Duration
}

func (m *manualTimers) afterFunc(d time.Duration, f func()) timer {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pending = append(m.pending, f)
	m.after = append(m.after, d)
	return nil
}

// fire runs the pending callbacks and reports how many there were.
func (m *manualTimers) fire() int {
	m.mu.Lock()
	fs := m.pending
	m.pending = nil
	m.mu.Unlock()
	for _, f := range fs {
		f()
	}
	return len(fs)
}

func TestWriteTickerRenewsOncePerQuarter(t *testing.T) {
	t.Parallel()
	timers := &manualTimers{}
	ticks := newWriteTicker(8 * time.Second)
	ticks.afterFunc = timers.afterFunc
	rec := &deadlineRecorder{}
	dc := newDeadlineConn(rec, 0, ticks)
	write := func() {
		_, err := dc.Write([]byte("x"))
		require.NoError(t, err)
	}

	start := time.Now()
	write()
	require.Equal(t, int32(1), rec.renewals.Load(), "the first write arms the deadline")
	assert.GreaterOrEqual(t, time.Unix(0, rec.last.Load()).Sub(start), 12*time.Second, "1.5 x WriteTimeout ahead")
	assert.Equal(t, []time.Duration{2 * time.Second}, timers.after, "a tick a quarter of WriteTimeout later")
	write()
	write()
	assert.Equal(t, int32(1), rec.renewals.Load(), "writes within the quarter do not renew")

	require.Equal(t, 1, timers.fire())
	write()
	assert.Equal(t, int32(2), rec.renewals.Load(), "the first write after a tick renews")

	// A quarter with a renewal keeps the ticker going; one without stops it.
	require.Equal(t, 1, timers.fire())
	require.Equal(t, 1, timers.fire())
	assert.Equal(t, 0, timers.fire(), "an idle quarter stops the ticker")
	assert.False(t, ticks.running.Load())

	write()
	assert.Equal(t, int32(3), rec.renewals.Load(), "a write after the ticker stopped renews")
	assert.Equal(t, 1, timers.fire(), "and restarts the ticker")
}

// Many connections renewing while the ticker starts and stops: the race
// detector checks the handoff, and once the ticker stops every connection
// renews at its next write.
func TestWriteTickerConcurrent(t *testing.T) {
	t.Parallel()
	ticks := newWriteTicker(4 * time.Millisecond) // real timers, a tick per millisecond
	var wg sync.WaitGroup
	recs := make([]*deadlineRecorder, 8)
	dcs := make([]*deadlineConn, len(recs))
	for i := range recs {
		recs[i] = &deadlineRecorder{}
		dc := newDeadlineConn(recs[i], 0, ticks)
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
