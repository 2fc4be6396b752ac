package wssafe

import (
	"context"
	"log/slog"
	"time"
)

func (e *Endpoint) closeDone() {
	select {
	case <-e.done:
	default:
		close(e.done)
	}
}

// Shutdown stops the endpoint: new handshakes get 503 with Retry-After,
// every live session (authenticated or not yet) is closed with 1001 "going
// away", and Shutdown waits for their callbacks to return.
//
// When ctx has a deadline, every close handshake (the close frame's write
// and the wait for the peer's) must end shortly before it: socket deadlines
// on the real clock, a tenth of the time left (at most a second) ahead of
// ctx's, bound every read and write of the remaining sessions, whatever
// coder/websocket's own 5 s bounds or the write timeout would allow. A peer
// that does not read, or does not answer in time, is then dropped without
// a handshake; that is what the deadline is for, and Shutdown still returns
// nil once every session has ended. It returns ctx's error only if ctx ends
// while a callback still runs: the remaining connections are then closed
// under it, and Shutdown does not wait for those callbacks.
//
// http.Server.Shutdown does not reach hijacked connections; call both,
// this one first, with the same ctx: the margin above is left for it.
// Shutdown is safe to call more than once.
func (e *Endpoint) Shutdown(ctx context.Context) error {
	h := e.hub
	h.mu.Lock()
	first := !e.closing.Swap(true)
	live := h.liveSessions()
	if len(live) == 0 {
		e.closeDone()
	}
	h.mu.Unlock()
	if first {
		logEvent(ctx, e.log, slog.LevelInfo, EventShuttingDown, "wssafe: shutting down",
			slog.Int("sessions", len(live)))
		e.cfg.auth.shutdown(ctx)
	}
	var limit time.Time
	if d, ok := ctx.Deadline(); ok {
		// ctx's deadline and the sockets' are on the real clock.
		limit = d.Add(-shutdownMargin(time.Until(d)))
	}
	for _, s := range live {
		go s.shutdown(limit)
	}
	select {
	case <-e.done:
		return nil
	case <-ctx.Done():
		// A close handshake in progress cannot be cut short through
		// coder/websocket; closing the socket under it can.
		for _, s := range live {
			s.dc.Close()
		}
		return ctx.Err()
	}
}

// shutdownMargin is how much of the time left before Shutdown's deadline is
// kept for the sessions to end after their sockets' deadlines, and for
// http.Server.Shutdown: a tenth, at most a second.
func shutdownMargin(left time.Duration) time.Duration {
	return min(max(left/10, 0), time.Second)
}

// shutdown closes the session with 1001, every read and write bounded by
// limit (zero: no bound of Shutdown's).
func (s *Session) shutdown(limit time.Time) {
	if !limit.IsZero() {
		s.dc.limitBy(limit)
	}
	s.closeWith(ErrShutdown)
}
