package wssafe

// Revocation: the records that refuse a revoked subject's older tokens for
// the longest token lifetime, the lifetime check that bounds it, and the
// check every token passes at the handshake, first message and refresh.

import (
	"context"
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
