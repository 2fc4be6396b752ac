package wssafe

import (
	"net"
	"sync/atomic"
	"time"
)

// deadlineConn is the hijacked connection as coder/websocket sees it. It
// arms deadlines only where they can matter, because setting and clearing
// a deadline costs two runtime timer updates and clock reads, and doing
// that around every message and every write cost more CPU than the rest of
// wssafe's per-message work together:
//
//   - The message timeout is armed when a started message needs another
//     read from the socket. A message that arrived whole (the common case)
//     never touches the timer; one that trickles in, or never ends (empty
//     continuation frames), is cut off MessageTimeout after that read.
//   - The write deadline is renewed lazily: before any write reaches the
//     socket (data, pong, ping or close, whoever writes it) the deadline is
//     moved to 1.5 x WriteTimeout ahead once a quarter of WriteTimeout has
//     passed since it was last moved, so at least 1.25 x WriteTimeout
//     remains at every write. A blocked write therefore fails after between
//     WriteTimeout and 1.5 x WriteTimeout, never sooner. Whether a quarter
//     has passed is told by the endpoint's writeTicker, not by the clock: a
//     clock read per write was the largest single cost of the reply path.
//
// Reads happen on the serve goroutine or, during the close handshake, under
// coder/websocket's read lock; writes under its write lock. The state is
// atomic all the same, since beginMessage and endMessage run outside those
// locks.
type deadlineConn struct {
	net.Conn
	msgTimeout   time.Duration // <= 0: no message timeout
	writeTimeout time.Duration
	ticks        *writeTicker // nil: no write deadline

	msgState  atomic.Uint32 // msgIdle, msgOpen or msgArmed
	renewedAt atomic.Uint64 // ticks.count when the write deadline was last moved; 0: never
}

// The states of a message's deadline, in one word so that a message costs
// two atomic writes (begin, end) rather than three.
const (
	msgIdle  uint32 = iota // between messages
	msgOpen                // a data message has started and not ended
	msgArmed               // and its deadline is set
)

func newDeadlineConn(c net.Conn, msgTimeout time.Duration, ticks *writeTicker) *deadlineConn {
	dc := &deadlineConn{Conn: c, msgTimeout: msgTimeout, ticks: ticks}
	if ticks != nil {
		dc.writeTimeout = ticks.timeout
	}
	return dc
}

// beginMessage marks the start of a data message, after its first frame
// header has been read.
func (c *deadlineConn) beginMessage() {
	if c != nil && c.msgTimeout > 0 {
		c.msgState.Store(msgOpen)
	}
}

// endMessage marks the end of the message and disarms its deadline.
func (c *deadlineConn) endMessage() {
	if c != nil && c.msgState.Swap(msgIdle) == msgArmed {
		c.Conn.SetReadDeadline(time.Time{})
	}
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	if c.msgState.Load() == msgOpen {
		c.msgState.Store(msgArmed)
		c.Conn.SetReadDeadline(time.Now().Add(c.msgTimeout))
	}
	return c.Conn.Read(p)
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	if c.ticks != nil {
		if n := c.ticks.count.Load(); n != c.renewedAt.Load() {
			c.Conn.SetWriteDeadline(time.Now().Add(c.writeTimeout * 3 / 2))
			c.renewedAt.Store(n)
			c.ticks.renewed()
		}
	}
	return c.Conn.Write(p)
}

// A writeTicker counts quarters of WriteTimeout for all the connections of
// an endpoint. A connection that renewed its write deadline at count n
// renews again at its first write after the count has moved on, which is at
// most a quarter of WriteTimeout (plus the timer's lateness) later. The
// ticker runs only while connections renew: a quarter without a renewal
// stops it, the next renewal restarts it, so an idle endpoint has no timer
// pending. It is safe for concurrent use.
type writeTicker struct {
	timeout   time.Duration
	afterFunc func(time.Duration, func()) timer // time.AfterFunc; tests inject one
	count     atomic.Uint64                     // starts at 1, so a zero renewedAt is always stale
	running   atomic.Bool                       // a tick is pending or running; only its owner arms the next
	active    atomic.Bool                       // a connection renewed since the last tick
}

// newWriteTicker returns nil when writes have no deadline.
func newWriteTicker(timeout time.Duration) *writeTicker {
	if timeout <= 0 {
		return nil
	}
	t := &writeTicker{timeout: timeout, afterFunc: afterFunc}
	t.count.Store(1)
	return t
}

// renewed records a renewal and starts the ticker if it is not running.
func (t *writeTicker) renewed() {
	t.active.Store(true)
	if !t.running.Load() && t.running.CompareAndSwap(false, true) {
		t.afterFunc(t.timeout/4, t.tick)
	}
}

// tick runs on the timer's goroutine: it moves the count, so that every
// connection renews at its next write, and goes on only while connections
// are writing. A renewal racing with a stopping tick sees running false
// and restarts the ticker, or the tick sees active and restarts itself:
// the two stores and loads are ordered, so one of them sees the other.
func (t *writeTicker) tick() {
	t.count.Add(1)
	if t.active.Swap(false) {
		t.afterFunc(t.timeout/4, t.tick)
		return
	}
	t.running.Store(false)
	if t.active.Load() && t.running.CompareAndSwap(false, true) {
		t.afterFunc(t.timeout/4, t.tick)
	}
}
