package wssafe

// deadlineConn, the hijacked connection that arms the message, frame, idle
// and write deadlines lazily, with its frame scan and quarter ticker.

import (
	"bufio"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// maxControlStall bounds a started control frame when MessageTimeout is
// longer. coder/websocket reads a control frame's payload under its own
// fixed 5 s context and, when that expires, closes the socket without a
// close frame (the peer would see a bare TCP close, and the session a
// protocol error): wssafe's deadline must fire first.
const maxControlStall = 4 * time.Second

// deadlineConn is the hijacked connection as coder/websocket sees it. It
// arms deadlines only where they can matter, because setting and clearing
// a deadline costs two runtime timer updates and clock reads, and doing
// that around every message and every write cost more CPU than the rest of
// wssafe's per-message work together:
//
//   - Frame boundaries are followed in the bytes Read hands to
//     coder/websocket's buffered reader (frameScan), since coder has no
//     "frame started" hook. A frame that has started (header or payload,
//     data or control) and needs another read from the socket must complete
//     within MessageTimeout of that read, a control frame within
//     min(MessageTimeout, 4 s) (see maxControlStall). Between frames there
//     is no read deadline (keepalive covers an idle peer), and a frame that
//     arrived whole never touches the timer.
//   - The message timeout is armed when a started message needs another
//     read from the socket. A message that arrived whole (the common case)
//     never touches the timer; one that trickles in, or never ends (empty
//     continuation frames), is cut off MessageTimeout after that read. The
//     read deadline is the earliest of the frame's, the message's and,
//     between messages, the idle deadline.
//   - The idle deadline applies only while no data message is open (from
//     the end of one message to the first frame of the next, control
//     frames included), and is renewed lazily, like the write deadline:
//     when the session starts waiting for a message, the deadline is moved
//     to 1.25 x IdleTimeout ahead if the endpoint's idle ticker has moved
//     since it was last moved, so at least IdleTimeout remains at every
//     wait. A silent peer is therefore closed between IdleTimeout and 1.25
//     x IdleTimeout after the wait began, and a busy session moves the
//     deadline once per quarter of IdleTimeout, not once per message. While
//     a message is open the idle deadline stays on the socket until the
//     message needs another read, which re-arms the message's own deadline
//     in its place: a message that arrived whole touches no timer.
//   - After a read timed out mid-frame, coder/websocket's view of the
//     stream is lost (it has consumed part of a header, or payload it did
//     not unmask): every later Read fails at once, so the close handshake
//     sends its close frame and does not wait for the peer's.
//   - The write deadline is renewed lazily: before any write reaches the
//     socket (data, pong, ping or close, whoever writes it) the deadline is
//     moved to 1.5 x WriteTimeout ahead once a quarter of WriteTimeout has
//     passed since it was last moved, so at least 1.25 x WriteTimeout
//     remains at every write. A blocked write therefore fails after between
//     WriteTimeout and 1.5 x WriteTimeout, never sooner. Whether a quarter
//     has passed is told by the endpoint's write ticker (a quarterTicker),
//     not by the clock: a clock read per write was the largest single cost
//     of the reply path.
//   - Once the close path owns the read deadline (closeRead) nothing else
//     moves it, and a shutdown limit (limitBy) caps every read and write
//     deadline from then on: the lazy renewal never pushes it back out.
//
// All these deadlines are socket deadlines on the real clock (time.Now):
// the kernel knows no other, so tests cannot drive them with a fake clock.
// The tickers that pace the lazy renewals run on the endpoint's clock,
// like every other timer: under a fake clock a renewal happens only once
// the test has advanced it by a quarter of the timeout.
//
// Reads happen on the serve goroutine or, during the close handshake, under
// coder/websocket's read lock; writes, coder's and wssafe's own, under
// wire.mu (wire.go). Read's own state (scan, armed, stuck) is touched only
// by reads, so the lock orders it; msgState is atomic since beginMessage
// and endMessage run outside those locks, and every deadline change goes
// through mu. idleRenewed is touched only by the serve goroutine.
type deadlineConn struct {
	net.Conn
	msgTimeout time.Duration  // <= 0: no message or frame timeout
	ctlTimeout time.Duration  // a started control frame's bound
	writeTicks *quarterTicker // nil: no write deadline; else its timeout is WriteTimeout
	idleTicks  *quarterTicker // nil: no idle deadline; else its timeout is IdleTimeout
	tracks     bool           // msgState is followed: a message or an idle timeout is set
	scans      bool           // the frame scan runs: a message timeout is set, or the session inflates (compress.go)
	stuck      bool           // a read timed out mid-frame

	msgState    atomic.Uint32 // msgIdle, msgOpen or msgArmed
	renewedAt   atomic.Uint64 // writeTicks.count when the write deadline was last moved; 0: never
	idleRenewed uint64        // idleTicks.count when the idle deadline was last moved; 0: never

	sr      *sockReader // reads through borrowed buffers; nil: c.Conn.Read
	scan    frameScan
	armed   uint64 // the frame (scan.seq) whose deadline is armed; 0: none. Written under mu.
	readErr error  // the last failed read from the socket (a timeout, EOF, a reset); nil: none

	mu        sync.Mutex
	msgAt     time.Time     // the open message's deadline; zero: not armed
	frameAt   time.Time     // the armed frame's deadline
	idleAt    time.Time     // the idle (or auth) deadline, in force while no message is open; zero: none
	readAt    time.Time     // the read deadline on the socket
	writeAt   time.Time     // the write deadline on the socket
	idleBound bool          // readAt is the idle deadline
	closing   bool          // the close path owns the read deadline
	deflate   deflateParams // what the handshake negotiated (compress.go); set before the session starts, then read-only
	limit     time.Time     // no deadline later than this (Shutdown); zero: none

	wire wire // the write lock and the direct write path, see wire.go

	br       *bufio.Reader // coder/websocket's reader of this connection: what it has buffered, the scan has seen but coder not consumed
	inflate  inflateGuard  // the message being inflated (compress.go); the serve goroutine's
	msgsRead uint64        // the data messages begun through inflate, counted as the scan counts them
}

// The states of a message's deadline, in one word so that a message costs
// two atomic writes (begin, end) rather than three.
const (
	msgIdle  uint32 = iota // between messages
	msgOpen                // a data message has started and not ended
	msgArmed               // and its deadline is set
)

func newDeadlineConn(c net.Conn, msgTimeout time.Duration, writeTicks, idleTicks *quarterTicker) *deadlineConn {
	dc := &deadlineConn{Conn: c, msgTimeout: msgTimeout, ctlTimeout: min(msgTimeout, maxControlStall),
		writeTicks: writeTicks, idleTicks: idleTicks, tracks: msgTimeout > 0 || idleTicks != nil, scans: msgTimeout > 0}
	return dc
}

// buffered tells the frame scan about bytes coder/websocket reads without
// calling Read: those net/http had buffered past the handshake request.
func (c *deadlineConn) buffered(b []byte) {
	if c.scans {
		c.scan.feed(b)
	}
}

// awaitMessage marks the start of the wait for the next data message, and
// renews the idle deadline if its ticker has moved since the last renewal
// (see deadlineConn): per message, an atomic load and a comparison.
func (c *deadlineConn) awaitMessage() {
	if c.idleTicks != nil {
		if n := c.idleTicks.count.Load(); n != c.idleRenewed {
			c.renewIdle(n)
		}
	}
}

// renewIdle moves the idle deadline 1.25 x IdleTimeout ahead.
func (c *deadlineConn) renewIdle(n uint64) {
	c.mu.Lock()
	c.idleAt = time.Now().Add(c.idleTicks.timeout * 5 / 4) // a socket deadline: the real clock
	c.applyRead()
	c.mu.Unlock()
	c.idleRenewed = n
	c.idleTicks.renewed()
}

// beginMessage marks the start of a data message, after its first frame
// header has been read: from now on the idle deadline does not apply.
func (c *deadlineConn) beginMessage() {
	if c != nil && c.tracks {
		c.msgState.Store(msgOpen)
	}
}

// endMessage marks the end of the message and disarms its deadline. When a
// frame deadline is armed it is the message's last frame's, which has
// ended: the next Read re-arms, one timer update instead of two.
func (c *deadlineConn) endMessage() {
	if c != nil && c.msgState.Swap(msgIdle) == msgArmed {
		c.mu.Lock()
		c.msgAt = time.Time{}
		if c.armed == 0 {
			c.applyRead()
		}
		c.mu.Unlock()
	}
}

// setIdle sets the deadline in force while no data message is open (the
// first-message auth timeout, which reads its message as if idle); zero
// clears it. The next awaitMessage renews the idle deadline in its place.
func (c *deadlineConn) setIdle(t time.Time) {
	c.mu.Lock()
	c.idleAt = t
	c.applyRead()
	c.mu.Unlock()
	c.idleRenewed = 0
}

// idleExpired reports whether the read deadline in force is the idle one,
// so that a timeout means no message came, not that a frame stalled.
func (c *deadlineConn) idleExpired() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.idleBound
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	if !c.tracks {
		n, err := c.readSocket(p)
		if c.scans {
			c.scan.feed(p[:n])
		}
		if err != nil {
			c.readErr = err
		}
		return n, err
	}
	if c.stuck {
		return 0, os.ErrDeadlineExceeded
	}
	if c.sr != nil && c.sr.buf != nil {
		// Bytes already taken from the socket: no wait, so no deadline to
		// arm. A frame that arrived whole touches no timer.
		n := c.sr.take(p)
		if c.scans {
			c.scan.feed(p[:n])
		}
		return n, nil
	}
	if f := c.scan.current(); f != c.armed || c.msgState.Load() == msgOpen {
		c.rearm(f)
	}
	n, err := c.readSocket(p)
	if c.scans {
		c.scan.feed(p[:n])
	}
	if err != nil {
		c.readErr = err
		if c.scan.current() != 0 && isTimeout(err) {
			c.stuck = true
		}
	}
	return n, err
}

// readSocket reads from the connection, through a borrowed buffer when
// the connection is a bare socket (see sockReader).
func (c *deadlineConn) readSocket(p []byte) (int, error) {
	if c.sr != nil {
		return c.sr.read(c.Conn, p)
	}
	return c.Conn.Read(p)
}

// rearm arms the deadline of the frame in progress (0: none) and of a
// message that has just started, in place of the idle deadline.
func (c *deadlineConn) rearm(frame uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now() // a socket deadline: the real clock
	if c.msgState.CompareAndSwap(msgOpen, msgArmed) && c.msgTimeout > 0 {
		c.msgAt = now.Add(c.msgTimeout)
	}
	if frame != c.armed {
		c.armed, c.frameAt = frame, time.Time{}
		if frame != 0 && c.msgTimeout > 0 { // the scan may run for compression alone
			d := c.msgTimeout
			if c.scan.control {
				d = c.ctlTimeout
			}
			c.frameAt = now.Add(d)
		}
	}
	c.applyRead()
}

// applyRead puts the earliest of the armed deadlines on the socket (the
// idle one only while no message is open), unless it is there already or
// the close path owns the read deadline; mu is held.
func (c *deadlineConn) applyRead() {
	if c.closing {
		return
	}
	t := c.msgAt
	if !c.frameAt.IsZero() && (t.IsZero() || c.frameAt.Before(t)) {
		t = c.frameAt
	}
	idle := !c.idleAt.IsZero() && c.msgState.Load() == msgIdle && (t.IsZero() || c.idleAt.Before(t))
	if idle {
		t = c.idleAt
	}
	if c.beyondLimit(t) {
		t, idle = c.limit, false
	}
	c.idleBound = idle
	if !t.Equal(c.readAt) {
		c.readAt = t
		c.Conn.SetReadDeadline(t)
	}
}

// beyondLimit reports whether deadline t (zero: none) is later than the
// shutdown limit, if there is one; mu is held.
func (c *deadlineConn) beyondLimit(t time.Time) bool {
	return !c.limit.IsZero() && (t.IsZero() || t.After(c.limit))
}

// closeRead hands the read deadline to the close handshake: t (zero: none;
// coder/websocket bounds its wait for the peer's close frame at 5 s), never
// later than the shutdown limit. Nothing else moves it afterwards.
func (c *deadlineConn) closeRead(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closing = true
	if c.beyondLimit(t) {
		t = c.limit
	}
	c.readAt = t
	c.Conn.SetReadDeadline(t)
}

// limitBy makes t the latest deadline of every read and write from now on:
// the deadlines in force are brought forward to t, and neither the frame
// and message deadlines nor the lazy write renewal can push them back out.
// t is on the real clock.
func (c *deadlineConn) limitBy(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.limit.IsZero() && !t.Before(c.limit) {
		return
	}
	c.limit = t
	if c.writeAt.IsZero() || c.writeAt.After(t) {
		c.writeAt = t
		c.Conn.SetWriteDeadline(t)
	}
	if c.readAt.IsZero() || c.readAt.After(t) {
		c.readAt, c.idleBound = t, false
		c.Conn.SetReadDeadline(t)
	}
}

// armWrite renews the write deadline if its ticker has moved since the
// last renewal (see deadlineConn); every write calls it first (wire.go).
func (c *deadlineConn) armWrite() {
	if c.writeTicks != nil {
		if n := c.writeTicks.count.Load(); n != c.renewedAt.Load() {
			c.renewWrite(n)
		}
	}
}

// renewWrite moves the write deadline 1.5 x WriteTimeout ahead, or to the
// shutdown limit if that comes first.
func (c *deadlineConn) renewWrite(n uint64) {
	c.mu.Lock()
	t := time.Now().Add(c.writeTicks.timeout * 3 / 2) // a socket deadline: the real clock
	if c.beyondLimit(t) {
		t = c.limit
	}
	if !t.Equal(c.writeAt) {
		c.writeAt = t
		c.Conn.SetWriteDeadline(t)
	}
	c.mu.Unlock()
	c.renewedAt.Store(n)
	c.writeTicks.renewed()
}

// frameScan follows RFC 6455 frame boundaries in a byte stream: a few
// integer operations per header byte and one per read of payload, no
// allocation. It does not validate: coder/websocket does that, on the same
// bytes.
type frameScan struct {
	seq     uint64 // the number of the frame in progress or last seen; 0 before the first
	got     uint8  // header bytes of the frame in progress seen so far; 0 outside a header
	need    uint8  // the header's length: 2, plus 2 or 8 of extended length, plus 4 of mask
	ext     uint8  // extended-length bytes: 0, 2 or 8
	control bool   // the frame in progress is a control frame
	length  uint64 // the payload length decoded so far
	left    uint64 // payload bytes still to come

	// What compression's checks need (see inflateGuard): a few additions
	// per read and per frame header.
	off     uint64   // the bytes seen
	msgs    uint64   // the data messages begun (text and binary frames seen)
	data    uint64   // the payload bytes of data frames seen
	dataFin bool     // the data frame in progress or last seen has FIN set
	endMsg  uint64   // the last message whose final frame the scan has passed (its number in msgs)
	ends    *msgEnds // where the messages not yet checked end; nil: not kept (no compression)
}

// current returns the number of the frame in progress, or 0 between frames.
func (f *frameScan) current() uint64 {
	if f.got > 0 || f.left > 0 {
		return f.seq
	}
	return 0
}

func (f *frameScan) feed(b []byte) {
	f.off += uint64(len(b))
	for len(b) > 0 {
		if f.left > 0 {
			if uint64(len(b)) < f.left {
				f.left -= uint64(len(b))
				if !f.control {
					f.data += uint64(len(b))
				}
				return
			}
			b = b[f.left:]
			if !f.control {
				f.data += f.left
				f.ended(len(b))
			}
			f.left = 0
			continue
		}
		c := b[0]
		b = b[1:]
		switch f.got {
		case 0:
			f.seq++
			f.control = c&0x08 != 0
			if !f.control {
				f.dataFin = c&0x80 != 0
				if op := c & 0x0F; op == 0x1 || op == 0x2 {
					f.msgs++
				}
			}
			f.need, f.ext, f.length = 2, 0, 0
		case 1:
			switch n := c & 0x7F; n {
			case 126:
				f.ext = 2
			case 127:
				f.ext = 8
			default:
				f.length = uint64(n)
			}
			f.need = 2 + f.ext
			if c&0x80 != 0 {
				f.need += 4
			}
		default:
			if f.got < 2+f.ext {
				f.length = f.length<<8 | uint64(c)
			}
		}
		if f.got++; f.got == f.need {
			f.got, f.left = 0, f.length
			if f.length == 0 && !f.control {
				f.ended(len(b))
			}
		}
	}
}

// ended notes the end of a data frame, rest bytes before the end of what
// feed was given.
func (f *frameScan) ended(rest int) {
	if f.dataFin {
		f.endMsg = f.msgs
		if f.ends != nil {
			f.ends.push(f.msgs, f.off-uint64(rest))
		}
	}
}

// A quarterTicker counts quarters of a timeout (WriteTimeout, IdleTimeout)
// for all the connections of an endpoint, on the endpoint's clock. A
// connection that renewed its deadline at count n renews again at its first
// write (or wait) after the count has moved on, which is at most a quarter
// of the timeout (plus the timer's lateness) later. The ticker runs only
// while connections renew: a quarter without a renewal stops it, the next
// renewal restarts it, so an idle endpoint has no timer pending. It is safe
// for concurrent use.
type quarterTicker struct {
	timeout time.Duration
	clock   clock
	count   atomic.Uint64 // starts at 1, so a zero renewal mark is always stale
	running atomic.Bool   // a tick is pending or running; only its owner arms the next
	active  atomic.Bool   // a connection renewed since the last tick
}

// newQuarterTicker returns nil when the timeout is off (not positive).
func newQuarterTicker(timeout time.Duration, clk clock) *quarterTicker {
	if timeout <= 0 {
		return nil
	}
	t := &quarterTicker{timeout: timeout, clock: clk}
	t.count.Store(1)
	return t
}

// renewed records a renewal and starts the ticker if it is not running.
func (t *quarterTicker) renewed() {
	t.active.Store(true)
	if !t.running.Load() && t.running.CompareAndSwap(false, true) {
		t.clock.afterFunc(t.timeout/4, t.tick)
	}
}

// tick runs on the timer's goroutine: it moves the count, so that every
// connection renews at its next write, and goes on only while connections
// are writing. A renewal racing with a stopping tick sees running false
// and restarts the ticker, or the tick sees active and restarts itself:
// the two stores and loads are ordered, so one of them sees the other.
func (t *quarterTicker) tick() {
	t.count.Add(1)
	if t.active.Swap(false) {
		t.clock.afterFunc(t.timeout/4, t.tick)
		return
	}
	t.running.Store(false)
	if t.active.Load() && t.running.CompareAndSwap(false, true) {
		t.clock.afterFunc(t.timeout/4, t.tick)
	}
}
