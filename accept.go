package wssafe

// The handshake: ServeHTTP runs the guards in order, authenticates, accepts
// the upgrade through the hijack wrapper and attaches the connection.

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/coder/websocket"
)

// ServeHTTP performs the handshake and serves the session until it ends.
// The guards run in order of cost and all answer before Accept, on the
// request's goroutine: a refused client costs no goroutine of ours.
func (e *Endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ip := e.cfg.clientIP(r)
	if hasBody(r) {
		// First: a body that trickles in must not hold the socket while
		// any other check runs. It is never read.
		e.refuse(w, r, ip, refuseBody)
		return
	}
	if e.closing.Load() {
		e.refuseShutdown(ip)
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
	defer e.untrack(s) // releases the reservation whatever happens next
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
		e.record(Observation{Kind: HandshakeRefused, Reason: EventHandshakeFailed, ClientIP: ip})
		return
	}
	s.attach(conn, hw.conn)
	if !e.track(s) {
		e.refuseShutdown(ip)
		s.closeWith(ErrShutdown)
		s.finish()
		return
	}
	s.serve()
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
	if h.cfg.direct {
		dc.writeDirect()
	}
	// coder/websocket writes through brw.Writer; route it through dc too.
	// It is empty: net/http flushed the 101 response before hijacking. On
	// the direct path only control frames pass through it, each in one
	// flush (see wire.go): it must hold a whole one, 127 bytes.
	brw.Writer.Reset(dc)
	// What the client sent past its request reaches coder/websocket without
	// passing through dc.Read: dc's frame scan must see it all the same.
	n := brw.Reader.Buffered()
	b, _ := brw.Reader.Peek(n)
	if n > 0 {
		dc.buffered(b)
	}
	if size := h.cfg.ReadBufferSize; size != brw.Reader.Size() {
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
// br until ServeHTTP returns, which is the session's whole life: a new
// reader would leave br's 4 KiB buffer allocated beside it.
func resizeReader(br *bufio.Reader, b []byte, dc *deadlineConn, size int) {
	src := io.Reader(dc)
	if len(b) > 0 {
		src = io.MultiReader(bytes.NewReader(b), dc)
	}
	nr := bufio.NewReaderSize(src, max(size, len(b)))
	nr.Peek(len(b)) // copies b into nr's buffer: Read from a bytes.Reader
	*br = *nr
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
