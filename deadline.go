package wssafe

import (
	"math"
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
//     moved to 1.5 x WriteTimeout ahead if less than WriteTimeout remains.
//     A blocked write therefore fails after between WriteTimeout and
//     1.5 x WriteTimeout, never sooner.
//
// Reads happen on the serve goroutine or, during the close handshake, under
// coder/websocket's read lock; writes under its write lock. The state is
// atomic all the same, since beginMessage and endMessage run outside those
// locks.
type deadlineConn struct {
	net.Conn
	msgTimeout   time.Duration // <= 0: no message timeout
	writeTimeout time.Duration // <= 0: no write deadline
	epoch        time.Time     // origin of the monotonic offsets below

	inMessage    atomic.Bool  // a data message has started and not ended
	readArmed    atomic.Bool  // the message deadline is set
	writeRenewed atomic.Int64 // offset from epoch of the last write-deadline renewal
}

func newDeadlineConn(c net.Conn, msgTimeout, writeTimeout time.Duration) *deadlineConn {
	dc := &deadlineConn{Conn: c, msgTimeout: msgTimeout, writeTimeout: writeTimeout, epoch: time.Now()}
	dc.writeRenewed.Store(math.MinInt64 / 2) // never renewed: the first write arms it
	return dc
}

// beginMessage marks the start of a data message, after its first frame
// header has been read.
func (c *deadlineConn) beginMessage() {
	if c != nil && c.msgTimeout > 0 {
		c.inMessage.Store(true)
	}
}

// endMessage marks the end of the message and disarms its deadline.
func (c *deadlineConn) endMessage() {
	if c == nil {
		return
	}
	c.inMessage.Store(false)
	if c.readArmed.Swap(false) {
		c.Conn.SetReadDeadline(time.Time{})
	}
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	if c.inMessage.Load() && !c.readArmed.Load() {
		c.readArmed.Store(true)
		c.Conn.SetReadDeadline(time.Now().Add(c.msgTimeout))
	}
	return c.Conn.Read(p)
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	if c.writeTimeout > 0 {
		now := time.Since(c.epoch)
		if now-time.Duration(c.writeRenewed.Load()) > c.writeTimeout/2 {
			c.writeRenewed.Store(int64(now))
			c.Conn.SetWriteDeadline(c.epoch.Add(now + c.writeTimeout*3/2))
		}
	}
	return c.Conn.Write(p)
}
