package wssafe

// Message, Handler, Middleware, Chain, and the whole per-message chain that
// the read loop hands each message to (dispatch).

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
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

// recoverer is the outermost middleware of every endpoint's chain, always
// installed by New: a panic below it, in the callback or in any other
// middleware, is logged once with its stack and ends only its own session,
// with 1011 and a generic reason.
func recoverer(next Handler) Handler {
	return HandlerFunc(func(ctx context.Context, s *Session, m Message) (err error) {
		defer func() {
			if v := recover(); v != nil {
				logEvent(ctx, s.log, slog.LevelError, EventPanic, "wssafe: handler panicked",
					slog.String("panic", fmt.Sprint(v)), slog.String("stack", string(debug.Stack())))
				err = ErrPanic
			}
		}()
		return next.ServeMessage(ctx, s, m)
	})
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

// observeMessage times one message for the Observer; dispatch calls it only
// when there is an Observer, so that a nil Observer costs nothing per
// message.
func (s *Session) observeMessage(m Message) error {
	now := s.ep.cfg.clock.mono // an interval only
	start := now()
	err := s.ep.handler.ServeMessage(s.ctx, s, m)
	s.ep.cfg.Observer(Observation{Kind: MessageHandled, Session: s, ClientIP: s.ip, Duration: now().Sub(start)})
	return err
}
