package wssafe

// The endpoint's shutdown: Shutdown, ShutdownWith and the sessions' 1001
// closes under a deadline.

import (
	"context"
	"log/slog"
	"net/http"
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
// away", and Shutdown waits for their callbacks to return; then it stops
// [Options.Backplane], if any, within ctx (its Stop removes this node's
// presence from the cluster at once).
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
// http.Server.Shutdown does not reach hijacked connections: register the
// endpoint with [Endpoint.ShutdownWith] so that it starts the 1001 closes,
// then call Shutdown with the same ctx to wait for them. Shutdown is safe
// to call more than once, before or after the server's.
func (e *Endpoint) Shutdown(ctx context.Context) error {
	var limit time.Time
	if d, ok := ctx.Deadline(); ok {
		limit = d.Add(-shutdownMargin(time.Until(d))) // a socket deadline: the real clock
	}
	live := e.beginShutdown(ctx, limit)
	e.stopAuth.Do(func() { e.cfg.auth.shutdown(ctx) })
	select {
	case <-e.done:
		e.stopBackplane(ctx)
		return nil
	case <-ctx.Done():
		select {
		case <-e.done: // ended in time after all
			e.stopBackplane(ctx)
			return nil
		default:
		}
		// A close handshake in progress cannot be cut short through
		// coder/websocket; closing the socket under it can.
		for _, s := range live {
			s.dc.Close()
		}
		e.stopBackplane(ctx) // ctx has ended: presence is removed, nothing flushed
		return ctx.Err()
	}
}

// ShutdownWith registers the endpoint on srv, so that srv.Shutdown also
// begins the endpoint's shutdown: from then on new handshakes get 503,
// and every live session is closed with 1001 "going away" in the
// background. It is what makes a server's usual graceful stop reach the
// WebSocket sessions, whose hijacked connections srv.Shutdown neither
// closes nor waits for.
//
// srv runs the hook on a goroutine of its own, without a deadline, and
// does not wait for it; srv.Close does not run it at all. So stop in this
// order, with one deadline:
//
//	ep.ShutdownWith(srv)
//	...
//	srv.Shutdown(ctx) // stops accepting, begins the 1001 closes, waits for plain HTTP requests
//	ep.Shutdown(ctx)  // waits for the sessions, bounded by ctx's deadline
//
// Without the second call the process may exit before the close frames
// are sent. Once the sessions have ended, the hook stops
// [Options.Backplane], if any, within 5 s (the second call
// waits for that too, within its ctx). After srv.Close, call Shutdown
// yourself.
func (e *Endpoint) ShutdownWith(srv *http.Server) {
	srv.RegisterOnShutdown(func() {
		e.beginShutdown(context.Background(), time.Time{})
		if e.cfg.Backplane == nil {
			return
		}
		<-e.done
		ctx, cancel := context.WithTimeout(context.Background(), backplaneStopTimeout)
		defer cancel()
		e.stopBackplane(ctx)
	})
}

// backplaneStopTimeout bounds the Backplane's Stop when the ShutdownWith
// hook, which has no deadline of its own, calls it.
const backplaneStopTimeout = 5 * time.Second

// beginShutdown refuses new handshakes from now on and starts closing the
// live sessions with 1001, every read and write bounded by limit (zero: no
// bound of Shutdown's), without waiting; it returns those sessions. Every
// call does so: a later call brings an earlier one's limit forward.
func (e *Endpoint) beginShutdown(ctx context.Context, limit time.Time) []*Session {
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
	}
	for _, s := range live {
		go s.shutdown(limit)
	}
	return live
}

// shutdownMargin is how much of the time left before Shutdown's deadline is
// kept for the sessions to end after their sockets' deadlines, and for
// whatever else the caller stops under the same deadline: a tenth, at most
// a second.
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
