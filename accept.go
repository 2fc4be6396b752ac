package wssafe

// The handshake: ServeHTTP runs the guards in order, authenticates, accepts
// the upgrade through the hijack wrapper and attaches the connection.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/coder/websocket"
)

// ServeHTTP performs the handshake and starts the session. The guards run
// in order of cost and all answer before Accept, on the request's
// goroutine: a refused client costs no goroutine of ours. Once the
// connection is upgraded the session runs on a goroutine of its own and
// ServeHTTP returns, so that net/http's request, response and connection
// state, and the request goroutine's stack, are not kept for the
// session's life. A middleware around the endpoint therefore sees the
// handshake end, not the session: OnClose, Observer (SessionClosed) and
// Shutdown are where a session's end is seen.
func (e *Endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.stats.handshaking.Add(1)
	defer e.stats.handshaking.Add(-1)
	if e.cfg.Observer != nil {
		r = withHandshakeStart(r, e.cfg.clock.mono())
	}
	ip := e.cfg.clientIP(r)
	if hasBody(r) {
		// First: a body that trickles in must not hold the socket while
		// any other check runs. It is never read.
		e.refuse(w, r, ip, refuseBody)
		return
	}
	if e.closing.Load() {
		e.refuseShutdown(r.Context(), ip)
		refuse(w, http.StatusServiceUnavailable, 5*time.Second)
		return
	}
	if !e.guard(w, r, ip) || !e.requireTLS(w, r, ip) {
		return
	}
	s := newSession(e, r)
	if !e.reserve(w, r, s, ip) {
		return
	}
	started := false
	defer func() { // releases the reservation on every path but the session's own
		if !started {
			e.untrack(s)
		}
	}()
	if !e.identify(w, r, s) {
		return
	}
	hw := &hijackCapture{ResponseWriter: w, cfg: e.cfg}
	opts := e.accept
	opts.OnPingReceived = s.onPing
	opts.OnPongReceived = s.onPong
	conn, err := websocket.Accept(hw, r, &opts)
	if err != nil {
		// Accept has written the HTTP error (400, 403, 426 ...).
		e.log.LogAttrs(r.Context(), slog.LevelDebug, "wssafe: handshake failed",
			slog.String("remote", r.RemoteAddr), slog.Any("error", err))
		e.record(Observation{Kind: HandshakeRefused, Reason: EventHandshakeFailed, ClientIP: ip, Duration: e.sinceHandshake(r.Context())})
		return
	}
	s.attach(conn, hw.conn)
	if err := e.track(s); err != nil {
		if !e.reportStale(s, err) {
			e.refuseShutdown(r.Context(), ip)
		}
		s.closeWith(err)
		s.finish()
		return
	}
	started = true
	go e.run(s)
}

// run serves an accepted session on goroutines of its own: this one runs
// the opening (first-message authentication, admission, OnOpen), then a
// fresh one runs the read loop until the session ends. The opening can
// grow a goroutine's stack to 8 KiB or more (the token's read and the
// "authenticated" log line, the application's OnOpen), and the runtime
// shrinks a parked goroutine's stack only below a quarter of it in use,
// which a read loop parked in coder/websocket's reader is not: the loop's
// fresh stack grows only as deep as the loop itself goes (4 KiB).
func (e *Endpoint) run(s *Session) {
	if e.phase(s, s.opening, false) {
		go e.phase(s, s.loop, true)
	}
}

// phase runs one phase of a session and reports whether the session goes
// on to the next. When it does not (the phase failed, or it was the last),
// the session is closed with the phase's error, its end reported and its
// hold on the Hub released. A panic that escapes the chain's own recovery
// (in OnOpen, OnClose or an Observer) is recovered here, as net/http
// recovers a handler's: it is logged, the session is closed with 1011
// unless it has ended already, and the process and every other session go
// on; OnClose is not called after such a panic.
func (e *Endpoint) phase(s *Session, run func() error, last bool) (next bool) {
	defer func() {
		if next {
			return
		}
		if v := recover(); v != nil {
			logEvent(s.ctx, s.log, slog.LevelError, EventPanic, "wssafe: callback panicked",
				slog.String("panic", fmt.Sprint(v)), slog.String("stack", string(debug.Stack())))
			s.closeWith(ErrPanic)
		}
		e.untrack(s)
	}()
	err := run()
	if err == nil && !last {
		return true
	}
	s.closeWith(err)
	s.finish()
	return false
}

// identify runs handshake-time authentication and, once the subject is
// known, the per-subject admission. It answers the refusals itself (401,
// 403, 429). Without a token at the handshake the subject comes from the
// first message, and admission runs in the serve loop.
func (e *Endpoint) identify(w http.ResponseWriter, r *http.Request, s *Session) bool {
	if !e.authenticateHandshake(w, r, s) {
		return false
	}
	return s.subject == "" || e.admitEarly(w, r, s)
}

// hijackCapture keeps the net.Conn that Accept hijacks, wrapped in a
// deadlineConn, so the serve loop can use deadlines (one runtime timer per
// connection) instead of a context per read or write (a timer and a
// goroutine hand-off per call in coder/websocket).
type hijackCapture struct {
	http.ResponseWriter
	cfg  *config
	conn *deadlineConn
}

func (h *hijackCapture) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return c, brw, err
	}
	dc := newDeadlineConn(c, h.cfg.MessageTimeout, h.cfg.writeTicks, h.cfg.idleTicks)
	dc.deflate = negotiatedDeflate(h.ResponseWriter.Header())
	dc.br = brw.Reader
	dc.scans = dc.scans || dc.deflate.on // the inflation ratio counts compressed bytes (compress.go)
	if dc.deflate.on {
		dc.scan.ends = new(msgEnds) // where messages end, for data after a final deflate block (compress.go)
	}
	if h.cfg.direct {
		dc.writeDirect()
	}
	// coder/websocket writes through brw.Writer; route it through dc too.
	// It is empty: net/http flushed the 101 response before hijacking. On
	// the direct path only control frames pass through it, each in one
	// flush (see wire.go), and it shrinks to controlWriteBuffer bytes.
	if h.cfg.direct {
		shrinkWriter(brw.Writer, dc)
	} else {
		brw.Writer.Reset(dc)
	}
	// What the client sent past its request reaches coder/websocket without
	// passing through dc.Read: dc's frame scan must see it all the same.
	n := brw.Reader.Buffered()
	b, _ := brw.Reader.Peek(n)
	if n > 0 {
		dc.buffered(b)
	}
	size := h.cfg.ReadBufferSize
	if dc.sr = newSockReader(c, h.cfg.readPool); dc.sr != nil {
		size = borrowReaderSize // the connection reads through borrowed buffers
	}
	if size != brw.Reader.Size() {
		resizeReader(brw.Reader, b, dc, size)
	}
	h.conn = dc
	return dc, brw, nil
}

// resizeReader gives br, net/http's reader of the hijacked connection, a
// buffer of size bytes (at least len(b)) that holds b, the bytes br had
// buffered past the request, and reads on from dc. coder/websocket reads
// through br: it takes what br has buffered and resets br to read from the
// connection (Accept, https://github.com/golang/go/issues/32314), keeping
// br's buffer, so the buffer must be replaced, not reset. br is replaced in
// place rather than by a new *bufio.Reader because net/http's conn keeps
// br until ServeHTTP returns, and coder/websocket keeps the pointer it got
// from Hijack: a new reader would leave br's 4 KiB buffer allocated beside
// it.
func resizeReader(br *bufio.Reader, b []byte, dc *deadlineConn, size int) {
	src := io.Reader(dc)
	if len(b) > 0 {
		src = io.MultiReader(bytes.NewReader(b), dc)
	}
	nr := bufio.NewReaderSize(src, max(size, len(b)))
	nr.Peek(len(b)) // copies b into nr's buffer: Read from a bytes.Reader
	*br = *nr
}

// controlWriteBuffer is the size of coder/websocket's write buffer once
// data frames bypass it (config.direct): it then carries only control
// frames, the largest of which is 127 bytes (a 2-byte header, server frames
// being unmasked, and at most 125 bytes of payload), each written with one
// Flush. Below that size one frame would become several Writes on the
// connection. coder writes a frame's header and payload into the buffer
// separately and flushes once: 128 bytes hold both, with one to spare.
const controlWriteBuffer = 128

// shrinkWriter gives bw, net/http's writer of the hijacked connection,
// which coder/websocket keeps, a buffer of controlWriteBuffer bytes that
// writes to dc, in place of net/http's 4 KiB. bw is replaced in place, not
// by a new *bufio.Writer, because coder/websocket takes the pointer from
// Hijack: the old buffer is then garbage.
func shrinkWriter(bw *bufio.Writer, dc *deadlineConn) {
	*bw = *bufio.NewWriterSize(dc, controlWriteBuffer)
}

func (h *hijackCapture) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// WriteHeader closes the connection after an error that coder/websocket
// answers itself (400, 405, 426 ...), as after wssafe's own refusals.
func (h *hijackCapture) WriteHeader(code int) {
	if code >= http.StatusBadRequest {
		closeAfterReply(h.ResponseWriter)
	}
	h.ResponseWriter.WriteHeader(code)
}

// WriteHeaderNow forwards to frameworks (gin) that buffer the status line.
func (h *hijackCapture) WriteHeaderNow() {
	if w, ok := h.ResponseWriter.(interface{ WriteHeaderNow() }); ok {
		w.WriteHeaderNow()
	}
}

// attach binds the accepted connection and arms the session's timers. It
// runs before the session is visible to any other goroutine.
func (s *Session) attach(conn *websocket.Conn, dc *deadlineConn) {
	s.conn = conn
	s.dc = dc
	conn.SetReadLimit(s.ep.cfg.ReadLimit)
	s.timerMu.Lock()
	defer s.timerMu.Unlock()
	clk := s.ep.cfg.clock
	if iv := s.ep.cfg.PingInterval; iv > 0 {
		s.pinger = clk.afterFunc(iv, s.keepalive)
	}
	if lt := s.ep.cfg.MaxLifetime; lt > 0 {
		s.lifetime = clk.afterFunc(lt, func() { s.closeWith(ErrMaxLifetime) })
	}
}
