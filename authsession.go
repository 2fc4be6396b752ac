package wssafe

// A session's authentication: at the handshake, by first message, the token's
// expiry and in-band refresh.

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// authState is a session's verified token: its claims and the timer that
// ends the session when it expires. Refresh replaces both.
type authState struct {
	mu      sync.Mutex
	claims  jwt.Token
	exp     time.Time
	timer   timer
	stopped bool // the session has ended; arm nothing more
}

func (st *authState) stop() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.stopped = true
	if st.timer != nil {
		st.timer.Stop()
		st.timer = nil
	}
}

// Claims returns the verified claims of the session's current token, or nil
// when the endpoint does not authenticate (or before authentication). After
// an in-band refresh it returns the new token's claims. The session closes
// 3000 "token expired" at the token's exp (Claims().Expiration()) plus
// AuthOptions.AcceptableSkew. In a callback, SessionFromContext(ctx).Claims()
// reaches them from a context alone. Treat the token as read-only: it is
// shared. Safe for concurrent use.
func (s *Session) Claims() jwt.Token {
	s.auth.mu.Lock()
	defer s.auth.mu.Unlock()
	return s.auth.claims
}

// authenticateHandshake verifies a token the handshake carries. It answers
// 401/403 itself and returns false when the handshake must not proceed.
func (e *Endpoint) authenticateHandshake(w http.ResponseWriter, r *http.Request, s *Session) bool {
	a := e.cfg.auth
	if a == nil {
		return true
	}
	raw, source, err := a.handshakeToken(r)
	if err == nil && raw == nil {
		if a.sources&FromFirstMessage != 0 {
			return true // the token is to come as the first message
		}
		err = &authError{reason: "missing", kind: ErrInvalidToken}
	}
	var id *identity
	if err == nil {
		id, err = a.verifyAside(r.Context(), raw)
	}
	if err == nil {
		e.hub.beginOpening(s)
		err = e.authorize(r.Context(), id)
	}
	if err != nil {
		e.logAuthFailure(r.Context(), s, err, source, raw)
		refuseAuth(w, err)
		return false
	}
	// Not yet visible to any other goroutine: the logger may change.
	s.log = s.log.With(slog.String("subject", id.subject))
	e.bindIdentity(s, id)
	logEvent(r.Context(), s.log, slog.LevelInfo, EventAuthenticated, "wssafe: authenticated", slog.String("source", source))
	return true
}

// refuseAuth answers a failed handshake without details: RFC 6750's
// challenge for a missing or bad token, 403 for a refused identity.
func refuseAuth(w http.ResponseWriter, err error) {
	closeAfterReply(w)
	var ae *authError
	errors.As(err, &ae)
	switch {
	case errors.Is(err, ErrPanic):
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
	case errors.Is(err, ErrForbidden):
		http.Error(w, http.StatusText(http.StatusForbidden), http.StatusForbidden)
	default:
		challenge := `Bearer error="invalid_token"`
		if ae != nil && ae.reason == "missing" {
			challenge = "Bearer"
		}
		if d := ae.description(); d != "" { // fixed text naming a claim, never token content
			challenge += `, error_description="` + d + `"`
		}
		w.Header().Set("WWW-Authenticate", challenge)
		http.Error(w, http.StatusText(http.StatusUnauthorized), http.StatusUnauthorized)
	}
}

// logAuthFailure reports a refused token through securityEvent: counted in
// Stats.AuthFailed by reason (and, at the handshake, in Stats.Refused under
// the event name), told to the Observer once, and logged rate-limited per
// client address and event, by its fingerprint and a stable reason, never
// the token or jwx's message (which may quote claims). A panic in
// Authorize is reported as a Panicked event at Error instead. Before the
// upgrade (s not yet accepted) the Observation carries no Session.
func (e *Endpoint) logAuthFailure(ctx context.Context, s *Session, err error, source string, raw []byte) {
	reason := "malformed"
	var ae *authError
	if errors.As(err, &ae) {
		reason = ae.reason
	}
	o := Observation{Kind: AuthFailed, Reason: reason, ClientIP: s.ip}
	if s.conn != nil {
		o.Session = s
	}
	level, event, msg := slog.LevelWarn, EventAuthFailed, "wssafe: authentication failed"
	attrs := []slog.Attr{slog.String("reason", reason), slog.String("source", source)}
	if ae != nil && ae.claim != "" {
		attrs = append(attrs, slog.String("claim", ae.claim))
	}
	switch {
	case errors.Is(err, ErrPanic):
		o.Kind, o.Reason = Panicked, EventPanic
		level, event, msg = slog.LevelError, EventPanic, "wssafe: Authorize panicked"
		if ae != nil && ae.cause != nil {
			attrs = append(attrs, slog.String("panic", ae.cause.Error()))
		}
	case errors.Is(err, ErrForbidden):
		event, msg = EventAuthForbidden, "wssafe: identity refused"
		if ae != nil && ae.cause != nil {
			attrs = append(attrs, slog.Any("error", ae.cause))
		}
	}
	if len(raw) > 0 {
		attrs = append(attrs, slog.Any("token", Redacted{b: raw, f: e.fp}))
	}
	e.securityEvent(ctx, s.log, level, o, event, msg, attrs...)
}

// bindIdentity records a verified identity on s. It runs on the session's
// own goroutine before admission; the Hub publishes the subject to other
// goroutines only once the session is admitted (under the Hub's lock).
func (e *Endpoint) bindIdentity(s *Session, id *identity) {
	s.auth.mu.Lock()
	s.auth.claims, s.auth.exp = id.claims, id.exp
	s.auth.mu.Unlock()
	s.subject = id.subject
	e.recordAuth(s, s.ip, "")
}

// authenticate runs before the session opens: it reads a first-message
// token when the handshake carried none, then arms the expiry timer.
func (s *Session) authenticate() error {
	a := s.ep.cfg.auth
	if a == nil {
		return nil
	}
	if s.subject == "" {
		if err := s.authenticateFirstMessage(a); err != nil {
			return err
		}
	}
	s.auth.mu.Lock()
	defer s.auth.mu.Unlock()
	s.armExpiry()
	return nil
}

func (s *Session) authenticateFirstMessage(a *authenticator) error {
	typ, data, err := s.readFirstMessage(a)
	if err != nil {
		return err
	}
	raw, err := firstMessageToken(typ, data)
	var id *identity
	if err == nil {
		id, err = a.verifyAside(s.ctx, raw)
	} else {
		err = invalidToken("malformed", err)
	}
	if err == nil {
		s.ep.hub.beginOpening(s)
		err = s.ep.authorize(s.ctx, id)
	}
	if err != nil {
		s.ep.logAuthFailure(s.ctx, s, err, "first_message", raw)
		if errors.Is(err, ErrTokenExpired) && a.expiredText != "" {
			s.WriteText(s.ctx, a.expiredText) // before close 3000 "token expired"
		}
		return err
	}
	s.ep.bindIdentity(s, id)
	s.releaseBuf(data) // only now: a refused token's bytes are logged (fingerprinted) above
	logEvent(s.ctx, s.log, slog.LevelInfo, EventAuthenticated, "wssafe: authenticated",
		slog.String("source", "first_message"), slog.String("subject", id.subject))
	return nil
}

// readFirstMessage reads one message under the auth read limit and the
// auth timeout (a network deadline, so it needs no goroutine).
func (s *Session) readFirstMessage(a *authenticator) (MessageType, []byte, error) {
	s.conn.SetReadLimit(a.readLimit)
	defer s.conn.SetReadLimit(s.ep.cfg.ReadLimit)
	s.dc.setIdle(time.Now().Add(a.timeout)) // a socket deadline: the real clock
	defer s.dc.setIdle(time.Time{})
	typ, r, err := s.conn.Reader(context.Background())
	var data []byte
	if err == nil {
		// A pooled buffer, given back once the token is verified; a
		// session refused here drops it to the garbage collector.
		if s.dc.deflate.on {
			r = s.dc.guardInflation(r, a.readLimit, s.ep.cfg.MaxInflationRatio)
		}
		data, err = readAll(r, s.borrowBuf(), false, a.readLimit)
	}
	if err != nil {
		return typ, nil, s.firstMessageError(err, a)
	}
	return typ, data, nil
}

func (s *Session) firstMessageError(err error, a *authenticator) error {
	switch {
	case s.ctx.Err() != nil:
		return context.Cause(s.ctx)
	case isTimeout(err) && s.dc.idleExpired():
		// The auth deadline, not a started frame's (see readError).
		logEvent(s.ctx, s.log, slog.LevelWarn, EventAuthTimeout, "wssafe: no token within the auth timeout",
			slog.Duration("timeout", a.timeout))
		return ErrAuthTimeout
	case errors.Is(err, websocket.ErrMessageTooBig):
		logEvent(s.ctx, s.log, slog.LevelWarn, EventMessageTooBig, "wssafe: first message over the auth read limit",
			slog.Int64("limit", a.readLimit))
		return tooBig(a.readLimit)
	}
	return s.readError(err, ErrAuthTimeout)
}

// armExpiry (re)starts the expiry timer for the current token. The caller
// holds s.auth.mu. A timer per session, no goroutine until it fires.
func (s *Session) armExpiry() {
	st := &s.auth
	if st.timer != nil {
		st.timer.Stop()
		st.timer = nil
	}
	if st.stopped || st.exp.IsZero() {
		return
	}
	cfg := s.ep.cfg
	st.timer = cfg.clock.afterFunc(st.exp.Add(cfg.auth.skew).Sub(cfg.clock.now()), s.expire)
}

// expire runs on the timer's goroutine. A timer that a refresh replaced
// may still fire; it finds the new expiry in the future and does nothing.
func (s *Session) expire() {
	s.auth.mu.Lock()
	deadline := s.auth.exp.Add(s.ep.cfg.auth.skew)
	live := !s.auth.stopped && !s.ep.cfg.clock.now().Before(deadline)
	s.auth.mu.Unlock()
	if !live {
		return
	}
	logEvent(s.ctx, s.log, slog.LevelInfo, EventTokenExpired, "wssafe: token expired; closing the session")
	s.closeWith(ErrTokenExpired)
}

// interceptRefresh handles m if it is an in-band refresh message (the
// endpoint's AllowRefresh is on: see dispatch, step 4), and reports
// whether it did; err is then the refresh's outcome. A malformed refresh
// message is handled too: err says why.
func (s *Session) interceptRefresh(a *authenticator, m Message) (bool, error) {
	raw, ok, err := refreshToken(m)
	if err != nil {
		return true, err
	}
	if !ok {
		return false, nil
	}
	return true, s.refresh(s.ctx, a, raw)
}

type refreshReply struct {
	Type string `json:"type"`
	Exp  int64  `json:"exp,omitempty"`
}

// refresh replaces the session's token with raw after verifying it fully
// and checking that it names the same subject.
func (s *Session) refresh(ctx context.Context, a *authenticator, raw []byte) error {
	id, err := a.verifyAside(ctx, raw)
	if err == nil && id.subject != s.subject {
		err = &authError{reason: "subject_changed", kind: ErrForbidden}
	}
	if err == nil {
		err = s.ep.authorize(ctx, id)
	}
	if err != nil {
		s.ep.logAuthFailure(ctx, s, err, "refresh", raw)
		return err
	}
	s.auth.mu.Lock()
	s.auth.claims, s.auth.exp = id.claims, id.exp
	s.armExpiry()
	s.auth.mu.Unlock()
	logEvent(ctx, s.log, slog.LevelDebug, EventTokenRefreshed, "wssafe: token refreshed")
	reply := refreshReply{Type: "refreshed"}
	if !id.exp.IsZero() {
		reply.Exp = id.exp.Unix()
	}
	return s.WriteJSON(ctx, reply)
}
