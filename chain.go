package wssafe

// Message, Handler, Middleware, Chain, and the whole per-message chain that
// the read loop hands each message to (dispatch).

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"
)

// A Message is one complete data message from the peer.
//
// Data is only valid until the handler returns: the serve loop reuses its
// storage for the next message. Copy it (or use [Message.Text], which
// copies) to keep it longer.
type Message struct {
	Type MessageType
	Data []byte
}

// Text returns the message's payload as a string (a copy).
func (m Message) Text() string { return string(m.Data) }

// A Handler handles the messages of one session. The serve loop calls
// ServeMessage once per message, in order, never concurrently for one
// session. ctx is the session's context: it is cancelled when the session
// ends.
//
// Returning nil reads the next message; returning a [*MessageError] (or a
// [*FieldError] from a field validator) sends the client an error reply and
// reads the next message; any other error ends the session with the close
// code [CloseFrame] assigns to it.
type Handler interface {
	ServeMessage(ctx context.Context, s *Session, m Message) error
}

// HandlerFunc adapts a function to a [Handler].
type HandlerFunc func(ctx context.Context, s *Session, m Message) error

// ServeMessage calls f(ctx, s, m).
func (f HandlerFunc) ServeMessage(ctx context.Context, s *Session, m Message) error {
	return f(ctx, s, m)
}

// A Middleware wraps a Handler with a per-message concern (validation,
// rate limiting, hashing, your own), in the shape of http middleware.
type Middleware func(Handler) Handler

// Chain returns h wrapped by mws, the first one outermost: a message passes
// through mws[0], then mws[1], ..., then h.
func Chain(h Handler, mws ...Middleware) Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// dispatch is the whole per-message chain, in this order, each step a
// direct call present only when configured (no closure, no allocation):
//
//  1. The message limits (MessageRate, SubjectMessageRate, ByteRate):
//     first, so that a message over them costs nothing more, and reaches
//     neither the callback nor the Observer.
//  2. The Observer's timing (MessageHandled): around everything the
//     message costs from here on, a panic's recovery included.
//  3. Panic recovery (recoverPanic): around all code that runs for the
//     message, the library's refresh included, so that a panic anywhere
//     below ends only its own session, with 1011.
//  4. In-band token refresh (AllowRefresh): before the user's code, so that
//     a refresh message, which carries a token, never reaches a user's
//     middleware or handler, nor any log line of theirs.
//  5. The user's handler, as given to New, its own middleware (Chain)
//     included.
//
// A new per-message check of the library's goes here, in the place its
// reason gives it; the read loop (read.go) has already checked the type,
// the size and UTF-8.
//
// The clock is read once before the chain when a limit or the Observer
// needs it, and once after it only for the Observer: the limiters spend
// their budgets at the reading that starts the Observer's interval, which
// therefore includes their few nanoseconds. Each reading is clock.nanos,
// the monotonic clock without a time.Time (about 40 ns on a VM): with a
// limit set, timing a message costs the Observer one reading.
func (s *Session) dispatch(m Message) error {
	cfg := s.ep.cfg
	var start int64
	if cfg.limited || cfg.Observer != nil {
		start = cfg.clock.nanos()
	}
	if cfg.limited { // 1
		if err := s.checkLimits(start, len(m.Data)); err != nil {
			return err
		}
	}
	if cfg.Observer == nil {
		return s.handle(m)
	}
	err := s.handle(m) // 2: timed from start
	cfg.Observer(Observation{Kind: MessageHandled, Session: s, ClientIP: s.ip,
		Duration: time.Duration(cfg.clock.nanos() - start), Size: len(m.Data)})
	return err
}

// handle runs steps 3 to 5 of dispatch.
func (s *Session) handle(m Message) (err error) {
	defer s.recoverPanic(&err)                     // 3
	if a := s.ep.cfg.auth; a != nil && a.refresh { // 4
		if ok, err := s.interceptRefresh(a, m); ok {
			return err
		}
	}
	return s.ep.handler.ServeMessage(s.ctx, s, m) // 5
}

// recoverPanic is handle's deferred recovery: a panic in the callback, in
// any middleware or in the refresh is logged once with its stack and ends
// only its own session, with 1011 and a generic reason.
func (s *Session) recoverPanic(err *error) {
	if v := recover(); v != nil {
		logEvent(s.ctx, s.log, slog.LevelError, EventPanic, "wssafe: handler panicked",
			slog.String("panic", fmt.Sprint(v)), slog.String("stack", string(debug.Stack())))
		*err = ErrPanic
	}
}
