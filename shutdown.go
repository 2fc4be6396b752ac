package wssafe

import (
	"context"
	"log/slog"
)

// track registers a live session; it fails once shutdown has begun.
func (e *Endpoint) track(s *Session) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing.Load() {
		return false
	}
	e.sessions[s] = struct{}{}
	return true
}

func (e *Endpoint) untrack(s *Session) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.sessions, s)
	if len(e.sessions) == 0 && e.closing.Load() {
		e.closeDone()
	}
}

func (e *Endpoint) closeDone() {
	select {
	case <-e.done:
	default:
		close(e.done)
	}
}

// Shutdown stops the endpoint: new handshakes get 503 with Retry-After,
// every live session is closed with 1001 "going away", and Shutdown waits
// for their callbacks to return. If ctx ends first, the remaining
// connections are dropped without a handshake and ctx's error is returned.
//
// http.Server.Shutdown does not reach hijacked connections; call both,
// this one first. Shutdown is safe to call more than once.
func (e *Endpoint) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	first := !e.closing.Swap(true)
	live := make([]*Session, 0, len(e.sessions))
	for s := range e.sessions {
		live = append(live, s)
	}
	if len(live) == 0 {
		e.closeDone()
	}
	e.mu.Unlock()
	if first {
		logEvent(ctx, e.log, slog.LevelInfo, EventShuttingDown, "wssafe: shutting down",
			slog.Int("sessions", len(live)))
		e.cfg.auth.shutdown(ctx)
	}
	for _, s := range live {
		go s.closeWith(ErrShutdown)
	}
	select {
	case <-e.done:
		return nil
	case <-ctx.Done():
		// A close handshake in progress cannot be cut short through
		// coder/websocket; closing the socket under it can.
		for _, s := range live {
			s.nc.Close()
		}
		return ctx.Err()
	}
}
