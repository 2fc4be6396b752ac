package wssafe

// The read loop: reading each message into a pooled buffer, UTF-8, read
// errors, and the ping and pong hooks.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"unicode/utf8"

	"github.com/coder/websocket"
)

// bufPool holds read buffers between messages: a session borrows one when a
// message starts and returns it when its callback returns, so an idle
// session holds none and a busy one allocates none.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

const maxPooledBuf = 64 << 10

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
	if s.dc.deflate.on {
		r = s.dc.guardInflation(r, cfg.ReadLimit, cfg.MaxInflationRatio)
	}
	data, err := readAll(r, s.borrowBuf(), typ == MessageText && !cfg.InsecureSkipUTF8Check, cfg.ReadLimit)
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
// The buffer never grows past limit+1 bytes (limit < 0: no bound), what
// coder/websocket's read limit lets through before its next read fails:
// a message of ReadLimit bytes holds about ReadLimit, not the twice that
// doubling would reach.
func readAll(r io.Reader, buf []byte, checkUTF8 bool, limit int64) ([]byte, error) {
	b := buf[:0]
	valid := 0 // b[:valid] is known to be valid UTF-8
	for {
		if len(b) == cap(b) {
			b = grow(b, limit)
		}
		n, err := r.Read(b[len(b):cap(b)])
		if n == 0 && err == nil && len(b) == cap(b) {
			// Past the limit and the reader did not fail, as coder's does.
			return b, fmt.Errorf("%w: over %d bytes", websocket.ErrMessageTooBig, limit)
		}
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

// grow returns b with room for more: twice its capacity (at least 512
// bytes), but at most limit+1 bytes in all (limit < 0: no bound); b as it
// is when it holds that much already.
func grow(b []byte, limit int64) []byte {
	n := max(2*cap(b), 512)
	if limit >= 0 && int64(n) > limit+1 {
		n = int(limit + 1)
	}
	if n <= cap(b) {
		return b
	}
	nb := make([]byte, len(b), n)
	copy(nb, b)
	return nb
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
	if err := s.inflateError(err); err != nil {
		return err
	}
	// Everything else is a protocol violation coder/websocket detected
	// (unmasked frame, reserved bits, bad opcode, bad control frame ...).
	logEvent(s.ctx, s.log, slog.LevelWarn, EventProtocolError, "wssafe: protocol violation",
		slog.String("detail", err.Error()))
	return errors.Join(ErrProtocol, err)
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

// inflateError classifies the read failures of a compressed message: the
// inflation ratio (1009) and data that does not inflate (1007), which
// coder/websocket reports as a bare read error and answers with no close
// frame: the session's close sends it. It returns nil for anything else.
func (s *Session) inflateError(err error) error {
	var ie *inflationError
	switch {
	case !s.dc.deflate.on:
		return nil
	case errors.As(err, &ie):
		logEvent(s.ctx, s.log, slog.LevelWarn, EventInflationRatio, "wssafe: compressed message over the inflation ratio",
			slog.Int64("inflated", ie.inflated), slog.Int64("compressed", ie.compressed), slog.Int64("ratio", ie.ratio))
		return ie
	case errors.Is(err, ErrInvalidCompressed), isInflateError(err):
		logEvent(s.ctx, s.log, slog.LevelWarn, EventInvalidCompressed, "wssafe: compressed message does not inflate")
		return ErrInvalidCompressed
	}
	return nil
}
