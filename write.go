package wssafe

// Write, WriteText and WriteJSON: direct writes on the caller's goroutine,
// ordered behind the send queue.

import (
	"context"
	"encoding/json"
	"log/slog"
)

// WriteText sends a text message: Write with MessageText.
func (s *Session) WriteText(ctx context.Context, text string) error {
	return s.Write(ctx, MessageText, []byte(text))
}

// WriteJSON sends v encoded as JSON in a text message.
func (s *Session) WriteJSON(ctx context.Context, v any) error {
	p, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.Write(ctx, MessageText, p)
}

// Write sends one message of type typ (MessageText or MessageBinary) as
// one frame. It returns when the message has been written to the
// connection, the write timeout has passed (the connection is then
// dropped), or ctx is done (the connection is then closed, as a frame cut
// short leaves it unusable). Writes from several goroutines are
// serialized. p is not retained. wssafe writes the frame itself, header
// and payload in one system call (see wire.go); for a coder/websocket
// version its tests do not cover, coder's Conn.Write does.
//
// On a compressed session (see [Session.Compressed]) a message of
// CompressionThreshold bytes or more is sent compressed, unless
// compressing does not make it smaller; [Session.WriteUncompressed]
// sends one plain.
func (s *Session) Write(ctx context.Context, typ MessageType, p []byte) error {
	return s.write(ctx, typ, p, false)
}

// write is Write, or WriteUncompressed when plain is set.
func (s *Session) write(ctx context.Context, typ MessageType, p []byte, plain bool) error {
	if err := s.ctx.Err(); err != nil {
		return ErrSessionClosed
	}
	// The session's own context needs no watcher: its end closes the
	// connection anyway. Passing a context without Done to coder/websocket
	// keeps it from arming a timer per write; the write deadline below does
	// that job. The callback's ctx is the session's (checked above), so
	// the common case skips the other checks.
	wctx := context.Background()
	if ctx != s.ctx {
		if err := ctx.Err(); err != nil {
			return err
		}
		if ctx.Done() != s.ctx.Done() {
			wctx = ctx
		}
	}
	// While messages queued by Send are unwritten, take a place behind
	// them: one goroutine's Send then Write arrive in order, and a Write
	// never waits on the lock held by a drain stuck on a slow peer. The
	// check is repeated under the lock, where the drain updates pending.
	if s.out.pending.Load() != 0 {
		return s.writeQueued(ctx, wctx, typ, p, plain)
	}
	s.wmu.Lock()
	if s.out.pending.Load() != 0 {
		s.wmu.Unlock()
		return s.writeQueued(ctx, wctx, typ, p, plain)
	}
	defer s.wmu.Unlock()
	return s.writeLocked(wctx, typ, p, plain)
}

// writeLocked writes one message, plain if asked; s.wmu is held. On the
// direct path (wire.go) wssafe encodes the frame, compressing it if the
// session does (compress_write.go), and writes it in one writev; else
// coder/websocket's Conn.Write writes it, compressing by the same
// threshold. The deadlineConn keeps the write deadline armed either way.
func (s *Session) writeLocked(wctx context.Context, typ MessageType, p []byte, plain bool) error {
	if err := checkType(typ); err != nil {
		return err
	}
	var err error
	switch {
	case s.dc.wire.direct && !plain && s.compresses(len(p)):
		err = s.writeDeflated(wctx, typ, p)
	case s.dc.wire.direct:
		err = s.dc.writeMessage(wctx, typ, p)
	case plain && s.dc.deflate.on:
		err = s.writeCoderPlain(wctx, typ, p)
	default:
		err = s.conn.Write(wctx, typ, p)
	}
	if err != nil {
		return s.writeFailed(err)
	}
	s.traffic.sent(len(p))
	return nil
}

// writeFailed handles a failed write. A write that failed on the socket
// may have stopped mid-frame: the connection is then closed (after the
// session's cause is set, so that a timeout is reported as one), and
// nothing, not even a close frame, is written after it.
func (s *Session) writeFailed(err error) error {
	defer s.dc.dropBroken()
	if s.ctx.Err() != nil { // e.g. Shutdown's deadline cut the write short
		return ErrSessionClosed
	}
	if isTimeout(err) {
		logEvent(s.ctx, s.log, slog.LevelWarn, EventWriteTimeout, "wssafe: write timed out; dropping a peer that does not read")
		s.fail(ErrWriteTimeout)
		return ErrWriteTimeout
	}
	return err
}
