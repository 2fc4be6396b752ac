package wssafe

// The close path: Close, what a callback's error does, the close handshake,
// the end-of-session report, and how an error maps to a close code.

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// Close ends the session with the close code and reason [CloseFrame]
// assigns to err: nil is 1000 normal closure, a [*CloseError] its own code
// and reason, a sentinel its code (ErrForbidden 3003, ErrTokenExpired
// 3000 ...), any other error 1011 with a generic reason. It returns once
// the close handshake has completed or timed out (at most 10 s). A
// CloseError's Reason is sent to the peer: keep it short and fixed. The
// first cause wins: calling Close again, or on a session that has ended,
// has no effect. Close is safe for concurrent use, from any goroutine.
func (s *Session) Close(err error) { s.closeWith(err) }

// fail ends the session from any goroutine without blocking the caller:
// the session is over (its context cancelled, lookups skip it) on return,
// and the close handshake runs in the background.
func (s *Session) fail(err error) {
	if s.end(err) {
		go s.hangUp(err)
	}
}

// closeWith is the only path by which the server ends a session. The first
// cause wins. It returns once the connection is closed, whoever closes it.
func (s *Session) closeWith(err error) {
	if s.end(err) {
		s.hangUp(err)
	}
	s.hungUp.Wait()
}

// end marks the session over with err as its cause, once, and reports
// whether this call did it.
func (s *Session) end(err error) bool {
	first := false
	s.closeOnce.Do(func() {
		first = true
		s.cancel(err)
		s.stopTimers()
		s.ep.hub.hide(s)
	})
	return first
}

// hangUp performs the close handshake, or drops the connection when the
// peer is known not to read, and then releases closeWith's waiters.
func (s *Session) hangUp(err error) {
	defer s.hungUp.Done()
	if errors.Is(err, ErrWriteTimeout) || peerGone(err) {
		s.conn.CloseNow()
		return
	}
	// The read deadline now belongs to the close handshake: none of ours,
	// so that it can read the peer's close frame (coder/websocket bounds
	// the wait at 5 s, Shutdown by its own deadline: see limitBy). A peer
	// that broke the protocol gets the close frame but no wait: RFC 6455
	// section 7.1.7, fail the connection. So does one whose read timed out
	// mid-frame: the stream cannot be parsed any more, and the
	// deadlineConn fails every further read at once.
	deadline := time.Time{}
	if errors.Is(err, ErrProtocol) {
		deadline = time.Now() // a socket deadline: the real clock
	}
	s.dc.closeRead(deadline)
	code, reason := CloseFrame(err)
	if s.dc.wire.direct {
		// coder/websocket gives its close frame 5 s to get the write lock
		// and then drops the connection; the lock is now wire.mu, held by a
		// data write that may be blocked on a peer that does not read:
		// bound that write the same way (see closeWriteBound).
		s.dc.limitBy(time.Now().Add(closeWriteBound)) // a socket deadline: the real clock
	}
	// On either write path, the reason wssafe chose is not one of coder's
	// to be fixed (wire.closeOut).
	s.dc.announceClose(code, reason)
	s.conn.Close(code, reason)
}

// closeWriteBound is how long the close path lets a blocked data write go
// on before the connection is dropped without a close frame: the bound
// coder/websocket sets its own close frame's write, and its wait for the
// peer's close frame.
const closeWriteBound = 5 * time.Second

func (s *Session) stopTimers() {
	s.timerMu.Lock()
	defer s.timerMu.Unlock()
	for _, t := range [...]timer{s.pinger, s.lifetime, s.zidle} {
		if t != nil {
			t.Stop()
		}
	}
	s.auth.stop()
}

// finish logs the end of the session and runs OnClose. By now closeWith has
// run, so the context's cause is the error that ended the session.
func (s *Session) finish() {
	s.dropDeflater()
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

func isTimeout(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded)
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
