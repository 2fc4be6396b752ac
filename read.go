package wssafe

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"syscall"
	"unicode/utf8"

	"github.com/coder/websocket"
)

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
	// coder/websocket writes through brw.Writer; route it through dc too.
	// It is empty: net/http flushed the 101 response before hijacking.
	brw.Writer.Reset(dc)
	// What the client sent past its request reaches coder/websocket without
	// passing through dc.Read: dc's frame scan must see it all the same.
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		dc.buffered(b)
	}
	h.conn = dc
	return dc, brw, nil
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

// keepalive runs on the ping timer's goroutine, which exists only while a
// ping is in flight: an idle session costs a timer, not a goroutine.
func (s *Session) keepalive() {
	// The pong timeout is a timer of the endpoint's clock, not a context
	// deadline (which only the real clock can end).
	ctx, cancel := context.WithCancel(s.ctx)
	pongTimer := s.ep.cfg.clock.afterFunc(s.ep.cfg.PongTimeout, cancel)
	s.pingOut.Store(true)
	err := s.conn.Ping(ctx)
	s.pingOut.Store(false)
	pongTimer.Stop()
	cancel()
	if s.ctx.Err() != nil {
		return
	}
	if peerGone(err) { // the ping's write found the peer gone: not a timeout
		s.closeWith(err)
		return
	}
	if err != nil {
		logEvent(s.ctx, s.log, slog.LevelWarn, EventPongTimeout, "wssafe: no pong within the timeout")
		s.closeWith(ErrPongTimeout)
		return
	}
	s.timerMu.Lock()
	if s.ctx.Err() == nil { // stopTimers has not run: rearm
		s.pinger.Reset(s.ep.cfg.PingInterval)
	}
	s.timerMu.Unlock()
}

// onPing is coder/websocket's OnPingReceived hook; it runs on the read
// goroutine, so a flood is answered by closing from another goroutine.
func (s *Session) onPing(context.Context, []byte) bool {
	if l := s.pingLimiter(); l == nil || l.AllowN(s.ep.cfg.clock.mono(), 1) {
		return true
	}
	if s.ctx.Err() == nil {
		logEvent(s.ctx, s.log, slog.LevelWarn, EventPingFlood, "wssafe: ping rate exceeded")
		s.fail(ErrPingFlood)
	}
	return false
}

// onPong is coder/websocket's OnPongReceived hook, on the read goroutine.
// Unsolicited pongs cost the server a frame read each, so they get a
// bucket of PingRate of their own; the first pong while a keepalive ping
// is out is its answer, or stands for it, and is free, so keepalive can
// never trip the limit whatever PingRate is.
func (s *Session) onPong(context.Context, []byte) {
	if s.pingOut.CompareAndSwap(true, false) {
		return
	}
	if l := s.pongLimiter(); l == nil || l.AllowN(s.ep.cfg.clock.mono(), 1) {
		return
	}
	if s.ctx.Err() == nil {
		logEvent(s.ctx, s.log, slog.LevelWarn, EventPongFlood, "wssafe: pong rate exceeded")
		s.fail(errPongFlood)
	}
}

// bufPool holds read buffers between messages: a session borrows one when a
// message starts and returns it when its callback returns, so an idle
// session holds none and a busy one allocates none.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

const maxPooledBuf = 64 << 10

// serve runs the read loop until the session ends, then reports the end.
func (s *Session) serve() {
	err := s.authenticate()
	if err == nil {
		err = s.open()
	}
	if err == nil {
		err = s.loop()
	}
	s.closeWith(err)
	s.finish()
}

func (s *Session) open() error {
	if err := s.ep.admit(s); err != nil {
		return err // the subject is over its connection cap
	}
	logEvent(s.ctx, s.log, slog.LevelDebug, EventSessionOpen, "wssafe: session open",
		slog.String("path", s.path), slog.String("subprotocol", s.conn.Subprotocol()))
	if a := s.ep.cfg.auth; a != nil && a.welcome != "" {
		if err := s.WriteText(s.ctx, a.welcome); err != nil {
			return err
		}
	}
	if s.ep.cfg.OnOpen != nil {
		return s.ep.cfg.OnOpen(s)
	}
	return nil
}

func (s *Session) loop() error {
	defer s.releaseBuf(nil)
	for {
		m, err := s.read()
		if err != nil {
			return err
		}
		s.traffic.received(len(m.Data))
		err = s.dispatch(m)
		s.releaseBuf(m.Data)
		if err != nil {
			if err := s.handleError(err); err != nil {
				return err
			}
		}
	}
}

// dispatch hands one message to the handler chain: the message limits
// first (a message over them reaches neither the callback nor the
// Observer), then the Observer's timing, then the chain, whose outermost
// middleware recovers panics. The limits and the timing are direct calls,
// present only when configured.
func (s *Session) dispatch(m Message) error {
	cfg := s.ep.cfg
	if cfg.limited {
		if err := s.checkLimits(len(m.Data)); err != nil {
			return err
		}
	}
	if cfg.Observer != nil {
		return s.observeMessage(m)
	}
	return s.ep.handler.ServeMessage(s.ctx, s, m)
}

// borrowBuf returns the pooled buffer the session holds, borrowing one if
// it holds none. Only the serve goroutine calls it.
func (s *Session) borrowBuf() []byte {
	if s.rbuf == nil {
		s.rbuf = bufPool.Get().(*[]byte)
	}
	return (*s.rbuf)[:0]
}

// releaseBuf returns the held buffer to the pool, keeping data's storage
// (a message read into it, possibly grown) unless it grew too large.
func (s *Session) releaseBuf(data []byte) {
	if s.rbuf == nil {
		return
	}
	if cap(data) > cap(*s.rbuf) {
		*s.rbuf = data[:0]
	}
	if cap(*s.rbuf) <= maxPooledBuf {
		bufPool.Put(s.rbuf)
	}
	s.rbuf = nil
}

// read returns the next data message, read into a pooled buffer, which
// the caller gives back with releaseBuf.
func (s *Session) read() (Message, error) {
	cfg := s.ep.cfg
	s.dc.awaitMessage() // the idle deadline, renewed lazily
	typ, r, err := s.conn.Reader(context.Background())
	if err != nil {
		return Message{}, s.readError(err, ErrIdleTimeout)
	}
	if !cfg.accept[typ] {
		logEvent(s.ctx, s.log, slog.LevelWarn, EventUnsupportedType, "wssafe: message type not accepted",
			slog.String("type", typ.String()))
		return Message{}, ErrUnsupportedType
	}
	// The message timeout is armed by the deadlineConn, in place of the
	// idle deadline, and only if the message needs another read from the
	// socket.
	s.dc.beginMessage()
	data, err := readAll(r, s.borrowBuf(), typ == MessageText && !cfg.InsecureSkipUTF8Check)
	s.dc.endMessage()
	if err == ErrInvalidUTF8 {
		logEvent(s.ctx, s.log, slog.LevelWarn, EventInvalidUTF8, "wssafe: invalid UTF-8 in a text message",
			slog.Int("len", len(data)))
		return Message{}, ErrInvalidUTF8
	}
	if err != nil {
		return Message{}, s.readError(err, ErrMessageTimeout)
	}
	return Message{Type: typ, Data: data}, nil
}

// readAll is io.ReadAll into buf's storage. With checkUTF8 it validates the
// text as it arrives and returns ErrInvalidUTF8 at the first bad chunk, so
// an invalid message fails fast instead of when (or if) the peer finishes it.
func readAll(r io.Reader, buf []byte, checkUTF8 bool) ([]byte, error) {
	b := buf[:0]
	valid := 0 // b[:valid] is known to be valid UTF-8
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil && err != io.EOF {
			// Before the UTF-8 check: bytes read with a failure (a
			// timeout mid-frame) are still masked.
			return b[:len(b)-n], err
		}
		if checkUTF8 {
			end := len(b)
			if err != io.EOF {
				end = fullRunes(b, valid)
			}
			if !utf8.Valid(b[valid:end]) {
				return b, ErrInvalidUTF8
			}
			valid = end
		}
		if err == io.EOF {
			return b, nil
		}
	}
}

// fullRunes returns the end of b without an incomplete encoding at its end
// (at most UTFMax-1 bytes, which the next chunk may complete), never before
// from. An invalid tail counts as complete, so it is rejected at once.
func fullRunes(b []byte, from int) int {
	for i := len(b) - 1; i >= from && i > len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if utf8.FullRune(b[i:]) {
				return len(b)
			}
			return i
		}
	}
	return len(b)
}

// readError classifies a read failure. timeoutErr is what a deadline
// expiring means at this point of the read: ErrIdleTimeout while waiting
// for a message (ErrAuthTimeout for the first-message token, whose caller
// answers that itself), unless the deadline in force was a started
// frame's: that is ErrMessageTimeout, whatever the read was waiting for.
func (s *Session) readError(err error, timeoutErr error) error {
	if s.ctx.Err() != nil {
		return context.Cause(s.ctx)
	}
	switch {
	case isTimeout(err), errors.Is(err, context.DeadlineExceeded):
		// context.DeadlineExceeded: coder/websocket's own 5 s bound on a
		// control frame's payload, reached only without MessageTimeout.
		ev := EventIdleTimeout
		if errors.Is(err, context.DeadlineExceeded) || !s.dc.idleExpired() {
			timeoutErr = ErrMessageTimeout
		}
		if timeoutErr == ErrMessageTimeout {
			ev = EventMessageTimeout
		}
		logEvent(s.ctx, s.log, slog.LevelWarn, ev, "wssafe: read timed out")
		return timeoutErr
	case errors.Is(err, websocket.ErrMessageTooBig):
		logEvent(s.ctx, s.log, slog.LevelWarn, EventMessageTooBig, "wssafe: message over the read limit",
			slog.Int64("limit", s.ep.cfg.ReadLimit))
		return tooBig(s.ep.cfg.ReadLimit)
	case websocket.CloseStatus(err) != -1, IsExpectedClose(err):
		return err // the peer closed or went away
	}
	// Everything else is a protocol violation coder/websocket detected
	// (unmasked frame, reserved bits, bad opcode, bad control frame ...).
	logEvent(s.ctx, s.log, slog.LevelWarn, EventProtocolError, "wssafe: protocol violation",
		slog.String("detail", err.Error()))
	return errors.Join(ErrProtocol, err)
}

// handleError decides what a callback's error does: a MessageError (or a
// FieldError) is answered and the session goes on (within the
// invalid-message budget); anything else ends the session.
func (s *Session) handleError(err error) error {
	if s.ctx.Err() != nil { // the session ended under the callback
		return context.Cause(s.ctx)
	}
	me := invalidMessage(err)
	if me == nil {
		// A write that failed because the peer vanished is not the
		// handler's failure, even when it returns (or wraps) the error.
		if !errors.Is(err, ErrPanic) && CloseStatus(err) == -1 && !peerGone(err) {
			logEvent(s.ctx, s.log, slog.LevelError, EventHandlerError, "wssafe: handler failed",
				slog.Any("error", err))
		}
		return err
	}
	logEvent(s.ctx, s.log, slog.LevelWarn, EventInvalidMessage, "wssafe: invalid message",
		slog.String("code", me.Code), slog.String("field", me.Field), slog.String("rule", me.Rule))
	if s.ep.cfg.strictMode || (s.invalidLimiter() != nil && !s.invalid.AllowN(s.ep.cfg.clock.mono(), 1)) {
		return ErrTooManyInvalid
	}
	return s.WriteJSON(s.ctx, errorReply{Type: "error", Code: me.Code, Field: me.Field, Message: me.Message})
}

type errorReply struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message,omitempty"`
}

// finish logs the end of the session and runs OnClose. By now closeWith has
// run, so the context's cause is the error that ended the session.
func (s *Session) finish() {
	err := context.Cause(s.ctx)
	level := slog.LevelInfo
	if IsExpectedClose(err) {
		level = slog.LevelDebug
	}
	logEvent(s.ctx, s.log, level, EventSessionClose, "wssafe: session closed",
		slog.Int("code", int(closeCode(err))), slog.Duration("duration", s.ep.cfg.clock.now().Sub(s.start)))
	if s.ep.cfg.OnClose != nil {
		s.ep.cfg.OnClose(s, err)
	}
}

// closeCode is the code a session ended with: the peer's if it sent the
// close frame, 1006 if it vanished without one, else the one we sent.
func closeCode(err error) StatusCode {
	if code := websocket.CloseStatus(err); code != -1 {
		return code
	}
	if peerGone(err) {
		return websocket.StatusAbnormalClosure
	}
	code, _ := CloseFrame(err)
	return code
}

// peerGone reports whether err means the peer has closed or vanished, so
// there is no close handshake left to perform.
func peerGone(err error) bool {
	return websocket.CloseStatus(err) != -1 || connLost(err) || errors.Is(err, net.ErrClosed)
}

// connLost reports whether err means the connection ended under us without
// a close frame: EOF, or a reset (a killed browser tab, a peer that closed
// with unread data) seen on a read (ECONNRESET) or a write (EPIPE). Such a
// session ends as 1006 abnormal closure, not as a protocol violation.
func connLost(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED)
}
