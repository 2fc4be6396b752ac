package wssafe

// Revocation: the records that refuse a revoked subject's older tokens for
// the longest token lifetime, the lifetime check that bounds it, and the
// check every token passes at the handshake, first message and refresh;
// the closes that must reach a session still opening.

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwt"
)

// revocations are the subjects whose tokens issued before a time are
// refused, each until its record expires (on the endpoint's clock).
type revocations struct {
	n     atomic.Int32 // len(m): the check costs no lock while nothing is revoked
	mu    sync.Mutex
	m     map[string]revocation
	sweep int // len(m) at which expired records are swept next
}

type revocation struct {
	before time.Time // tokens issued before this (and tokens without iat) are refused
	until  time.Time // when the record expires
}

// add records a revocation, keeping the later of two for one subject.
func (r *revocations) add(subject string, before, until, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = make(map[string]revocation)
	}
	old, ok := r.m[subject]
	if ok && old.until.After(now) {
		if old.before.After(before) {
			before = old.before
		}
		if old.until.After(until) {
			until = old.until
		}
	}
	r.m[subject] = revocation{before: before, until: until}
	if len(r.m) >= r.sweep {
		for sub, rec := range r.m {
			if !rec.until.After(now) {
				delete(r.m, sub)
			}
		}
		r.sweep = max(2*len(r.m), 64)
	}
	r.n.Store(int32(len(r.m)))
}

// refuses reports whether subject's token, issued at iat (zero: no iat),
// is revoked at now.
func (r *revocations) refuses(subject string, iat, now time.Time) bool {
	if r.n.Load() == 0 {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	rec, ok := r.m[subject]
	if !ok || !rec.until.After(now) {
		return false
	}
	return iat.IsZero() || iat.Before(rec.before)
}

// issuedAt returns tok's iat, or zero.
func issuedAt(tok jwt.Token) time.Time {
	if tok == nil {
		return time.Time{}
	}
	iat, _ := tok.IssuedAt()
	return iat
}

// revocationTTL is how long a revocation is kept: the longest a token
// issued before it can still be accepted. A token's exp is at most
// MaxTokenLifetime plus AcceptableSkew after its iat, and it is accepted
// (and an open session kept) until AcceptableSkew after its exp. Zero when
// MaxTokenLifetime is not set: nothing bounds an old token's life, so no
// record could be kept long enough.
func (c *config) revocationTTL() time.Duration {
	a := c.auth
	if a == nil || a.maxLifetime <= 0 {
		return 0
	}
	return a.maxLifetime + 2*a.skew
}

// checkLifetime refuses a token whose lifetime exceeds MaxTokenLifetime:
// exp minus iat, or, without iat, exp minus now, beyond it plus
// AcceptableSkew. jwx has checked exp's presence (required whenever
// MaxTokenLifetime is set) and iat's plausibility.
func (a *authenticator) checkLifetime(tok jwt.Token, now time.Time) error {
	if a.maxLifetime <= 0 {
		return nil
	}
	exp, ok := tok.Expiration()
	if !ok {
		return claimError("missing_claim", jwt.ExpirationKey, nil)
	}
	from := now
	if iat, ok := tok.IssuedAt(); ok {
		from = iat
	}
	if exp.Sub(from) > a.maxLifetime+a.skew {
		return claimError("lifetime", jwt.ExpirationKey, nil)
	}
	return nil
}

// authorize runs the checks a verified token passes before it binds a
// session (at the handshake, from the first message, on a refresh): the
// revocations, then the application's Authorize.
func (e *Endpoint) authorize(ctx context.Context, id *identity) error {
	if e.hub.revoked.refuses(id.subject, issuedAt(id.claims), e.cfg.clock.now()) {
		return invalidToken("revoked", nil)
	}
	return e.cfg.auth.authorize(ctx, id)
}

// revoke records that subject's tokens issued before before are refused
// until ttl after before, and closes the open sessions of subject on this node
// that hold such a token with err. It returns how many it closed.
func (h *Hub) revoke(subject string, before time.Time, ttl time.Duration, err error) int {
	now := h.e.cfg.clock.now()
	h.revoked.add(subject, before, before.Add(ttl), now)
	var stale []*Session
	for _, s := range h.BySubject(subject) {
		if h.revoked.refuses(subject, issuedAt(s.Claims()), now) {
			stale = append(stale, s)
		}
	}
	h.closeSessions(subject, stale, err)
	return len(stale)
}

// closings are the closes of subjects ([Hub.closeSubject], here or from
// another node) that a session still opening must see: one that passed
// authorize before the close and opens after it (the application's
// Authorize, Backplane.Acquire and the 101 response lie between) is
// refused at admission or acceptance ([Hub.stale]), as the close would
// have closed it had it been open. A close is recorded only while some
// session is opening, and kept only while one that began before it is.
// Guarded by Hub.mu.
type closings struct {
	seq     uint64             // closes so far
	last    map[string]closing // the latest close of each subject
	opening map[uint64]int     // the sessions opening, by the seq they began at
	sweep   int                // len(last) at which the records no session needs are swept
}

type closing struct {
	seq uint64
	err error // the close's error: the refused session closes with it
}

// add records a close of subject with err.
func (c *closings) add(subject string, err error) {
	c.seq++
	if len(c.opening) == 0 {
		return // no session to reach
	}
	if c.last == nil {
		c.last = make(map[string]closing)
	}
	c.last[subject] = closing{seq: c.seq, err: err}
}

// beginOpening marks s as opening: from now until it opens, a close of
// its subject refuses it. Authentication calls it just before authorize.
func (h *Hub) beginOpening(s *Session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := &h.closings
	h.endOpening(s)
	if c.opening == nil {
		c.opening = make(map[uint64]int)
	}
	c.opening[c.seq]++
	s.reg.opening, s.reg.since = true, c.seq
}

// endOpening undoes beginOpening once s opened or ended, and drops the
// close records no opening session began before; h.mu is held.
func (h *Hub) endOpening(s *Session) {
	if !s.reg.opening {
		return
	}
	s.reg.opening = false
	c := &h.closings
	if c.opening[s.reg.since]--; c.opening[s.reg.since] <= 0 {
		delete(c.opening, s.reg.since)
	}
	switch {
	case len(c.opening) == 0:
		clear(c.last)
	case len(c.last) >= c.sweep:
		oldest := c.seq
		for seq := range c.opening {
			oldest = min(oldest, seq)
		}
		for sub, rec := range c.last {
			if rec.seq <= oldest {
				delete(c.last, sub)
			}
		}
		c.sweep = max(2*len(c.last), 64)
	}
}

// stale returns why s, a session about to be admitted or opened, is
// refused: its token was revoked, or its subject closed, since it passed
// authorize; nil if neither. h.mu is held.
func (h *Hub) stale(s *Session) error {
	sub := s.subject
	if sub == "" {
		return nil
	}
	if h.revoked.n.Load() != 0 && h.revoked.refuses(sub, issuedAt(s.Claims()), h.e.cfg.clock.now()) {
		return invalidToken("revoked", nil)
	}
	if rec, ok := h.closings.last[sub]; ok && s.reg.opening && rec.seq > s.reg.since {
		return &subjectClosed{err: rec.err}
	}
	return nil
}

// subjectClosed refuses a session whose subject was closed while it was
// opening. It unwraps to the close's error, which sets its close frame.
type subjectClosed struct{ err error }

func (e *subjectClosed) Error() string {
	return "wssafe: the subject was closed while the session opened"
}
func (e *subjectClosed) Unwrap() error { return e.err }

// isStale reports whether err is one of [Hub.stale]'s.
func isStale(err error) bool {
	var ae *authError
	var sc *subjectClosed
	return errors.As(err, &sc) || errors.As(err, &ae) && ae.reason == "revoked"
}

// staleAnswer is the error refuseAuth answers a stale handshake with: 401
// for a revoked token or a close for a bad token, else 403.
func staleAnswer(err error) error {
	var sc *subjectClosed
	if errors.As(err, &sc) && !errors.Is(err, ErrInvalidToken) && !errors.Is(err, ErrTokenExpired) {
		return ErrForbidden
	}
	return err
}

// reportStale reports a session refused by [Hub.stale] as its cause is
// reported elsewhere (a revoked token as a refused token, reason
// "revoked"; a closed subject by the "subject_closed" line of one
// session), and reports whether err was such a refusal.
func (e *Endpoint) reportStale(s *Session, err error) bool {
	if !isStale(err) {
		return false
	}
	var sc *subjectClosed
	if !errors.As(err, &sc) {
		e.logAuthFailure(s.ctx, s, err, "admission", nil)
		return true
	}
	code, _ := CloseFrame(err)
	logEvent(s.ctx, e.log, slog.LevelInfo, EventSubjectClosed, "wssafe: closing the sessions of a subject",
		slog.String("subject", s.subject), slog.Int("sessions", 1), slog.Int("code", int(code)))
	return true
}
