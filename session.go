package wssafe

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"
)

// A Session is one WebSocket connection and what wssafe knows about it. Its
// methods are safe for concurrent use: any goroutine may write to a session
// or close it while its callback runs.
type Session struct {
	ep     *Endpoint
	id     string
	remote string
	path   string
	header http.Header // as received, credentials included: see Header
	start  time.Time
	log    *slog.Logger

	headerOnce sync.Once
	redacted   http.Header // header without credentials, made on first use

	// subject is the verified identity; it is set once, before the session
	// is registered or handed to the callback, and never changes.
	subject string
	auth    authState  // claims, expiry timer; see authsession.go
	ip      netip.Addr // the client's address: the peer's, or a trusted proxy's report

	reg     registration    // the Hub's bookkeeping, guarded by the Hub's mutex
	limits  messageLimits   // per-message rate limiters, see limit.go
	out     sendQueue       // the bounded outbound queue, see queue.go
	traffic trafficCounters // messages and bytes in and out, see observe.go

	ctx    context.Context // cancelled, with the ending error as cause, when the session ends
	cancel context.CancelCauseFunc

	conn *websocket.Conn
	dc   *deadlineConn // the hijacked connection, which arms the read and write deadlines
	rbuf *[]byte       // the pooled read buffer held while a message is handled
	wmu  sync.Mutex    // orders direct writes with the send queue's drain (queue.go)

	values sync.Map

	pings   *rate.Limiter
	pongs   *rate.Limiter // unsolicited pongs, in a bucket of their own at PingRate
	invalid *rate.Limiter
	// pingOut is set while a keepalive ping awaits its pong: the first pong
	// to arrive then is not counted against the pong budget.
	pingOut atomic.Bool

	closeOnce sync.Once
	hungUp    chan struct{} // closed once the connection is closed
	timerMu   sync.Mutex    // guards the timers against the goroutines they start
	pinger    timer         // on the endpoint's clock, like every timer
	lifetime  timer
}

type sessionKey struct{}

// SessionFromContext returns the session a callback's context belongs to,
// or nil.
func SessionFromContext(ctx context.Context) *Session {
	s, _ := ctx.Value(sessionKey{}).(*Session)
	return s
}

func newSession(e *Endpoint, r *http.Request) *Session {
	s := &Session{
		ep:     e,
		id:     newID(),
		remote: r.RemoteAddr,
		path:   r.URL.Path,
		header: r.Header,
		start:  e.cfg.clock.now(),
		hungUp: make(chan struct{}),
	}
	base := context.WithValue(context.WithoutCancel(r.Context()), sessionKey{}, s)
	s.ctx, s.cancel = context.WithCancelCause(base)
	// The ping and invalid-message limiters are made on first use, the
	// redacted header on first call: an idle session costs neither.
	s.log = slog.New(&sessionHandler{Handler: e.log.Handler(), id: s.id, remote: s.remote})
	return s
}

// pingLimiter returns the session's ping limiter, or nil when pings are
// not limited. Only the read goroutine calls it.
func (s *Session) pingLimiter() *rate.Limiter {
	if s.pings == nil {
		s.pings = newLimiter(s.ep.cfg.PingRate)
	}
	return s.pings
}

// pongLimiter returns the session's limiter of unsolicited pongs, or nil
// when they are not limited. Only the read goroutine calls it.
func (s *Session) pongLimiter() *rate.Limiter {
	if s.pongs == nil {
		s.pongs = newLimiter(s.ep.cfg.PingRate)
	}
	return s.pongs
}

// invalidLimiter returns the session's invalid-message budget, or nil in
// strict mode. Only the serve goroutine calls it.
func (s *Session) invalidLimiter() *rate.Limiter {
	if s.invalid == nil {
		s.invalid = newLimiter(s.ep.cfg.InvalidMessages)
	}
	return s.invalid
}

// newID returns 128 random bits, base64url encoded: unguessable, so an ID
// can be handed to clients and used as a capability.
func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// redactHeader copies the handshake headers without the ones that carry
// credentials, so application code cannot leak them by logging headers.
func redactHeader(h http.Header) http.Header {
	c := h.Clone()
	for _, k := range [...]string{"Authorization", "Cookie", "Sec-Websocket-Protocol", "Sec-Websocket-Key", "Proxy-Authorization"} {
		c.Del(k)
	}
	return c
}

// ID returns the session's random identifier (22 URL-safe characters).
func (s *Session) ID() string { return s.id }

// RemoteAddr returns the peer's address as seen by the HTTP server.
func (s *Session) RemoteAddr() string { return s.remote }

// Path returns the URL path of the handshake request.
func (s *Session) Path() string { return s.path }

// Header returns the handshake request's headers, minus Authorization,
// Cookie, Sec-WebSocket-Protocol and Sec-WebSocket-Key, which can carry
// credentials. Do not modify it.
func (s *Session) Header() http.Header {
	s.headerOnce.Do(func() { s.redacted = redactHeader(s.header) })
	return s.redacted
}

// Subject returns the verified identity the session is bound to (a JWT's
// subject claim), or "" when the endpoint does not authenticate.
func (s *Session) Subject() string { return s.subject }

// StartedAt returns when the handshake completed.
func (s *Session) StartedAt() time.Time { return s.start }

// Subprotocol returns the negotiated subprotocol, or "".
func (s *Session) Subprotocol() string { return s.conn.Subprotocol() }

// Context returns the session's context. It carries the handshake request's
// values, is cancelled when the session ends, and context.Cause reports why.
func (s *Session) Context() context.Context { return s.ctx }

// Logger returns the session's logger, which already carries the session ID
// and remote address.
func (s *Session) Logger() *slog.Logger { return s.log }

// Redact wraps b for logging: it logs as a length and a fingerprint keyed by
// the endpoint's FingerprintKey, never as the bytes themselves.
func (s *Session) Redact(b []byte) Redacted { return Redacted{b: b, f: s.ep.fp} }

// Set stores an application value under key, like context keys: use an
// unexported key type.
func (s *Session) Set(key, value any) { s.values.Store(key, value) }

// Value returns the application value stored under key, or nil.
func (s *Session) Value(key any) any {
	v, _ := s.values.Load(key)
	return v
}

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

// Write sends one message of type typ. It returns when the message has been
// written to the connection, the write timeout has passed (the connection is
// then dropped), or ctx is done. Writes from several goroutines are
// serialized. p is not retained.
func (s *Session) Write(ctx context.Context, typ MessageType, p []byte) error {
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
		return s.writeQueued(ctx, wctx, typ, p)
	}
	s.wmu.Lock()
	if s.out.pending.Load() != 0 {
		s.wmu.Unlock()
		return s.writeQueued(ctx, wctx, typ, p)
	}
	defer s.wmu.Unlock()
	return s.writeLocked(wctx, typ, p)
}

// writeLocked writes one message; s.wmu is held. The deadlineConn keeps
// the write deadline armed.
func (s *Session) writeLocked(wctx context.Context, typ MessageType, p []byte) error {
	err := s.conn.Write(wctx, typ, p)
	if err != nil {
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
	s.traffic.sent(len(p))
	return nil
}

// Close ends the session with the close code and reason [CloseFrame]
// assigns to err: nil is 1000 normal closure, a [*CloseError] its own code
// and reason, a sentinel its code (ErrForbidden 3003, ErrTokenExpired
// 3000 ...), any other error 1011 with a generic reason. It returns once
// the close handshake has completed or timed out (at most 10 s). A
// CloseError's Reason is sent to the peer: keep it short and fixed. The
// first cause wins: calling Close again, or on a session that has ended,
// has no effect. Close is safe for concurrent use, from any goroutine.
func (s *Session) Close(err error) { s.closeWith(err) }

// fail ends the session from any goroutine without blocking the caller:
// the session is over (its context cancelled, lookups skip it) on return,
// and the close handshake runs in the background.
func (s *Session) fail(err error) {
	if s.end(err) {
		go s.hangUp(err)
	}
}

// closeWith is the only path by which the server ends a session. The first
// cause wins. It returns once the connection is closed, whoever closes it.
func (s *Session) closeWith(err error) {
	if s.end(err) {
		s.hangUp(err)
	}
	<-s.hungUp
}

// end marks the session over with err as its cause, once, and reports
// whether this call did it.
func (s *Session) end(err error) bool {
	first := false
	s.closeOnce.Do(func() {
		first = true
		s.cancel(err)
		s.stopTimers()
		s.ep.hub.hide(s)
	})
	return first
}

// hangUp performs the close handshake, or drops the connection when the
// peer is known not to read, and then releases closeWith's waiters.
func (s *Session) hangUp(err error) {
	defer close(s.hungUp)
	if errors.Is(err, ErrWriteTimeout) || peerGone(err) {
		s.conn.CloseNow()
		return
	}
	// The read deadline now belongs to the close handshake: none of ours,
	// so that it can read the peer's close frame (coder/websocket bounds
	// the wait at 5 s, Shutdown by its own deadline: see limitBy). A peer
	// that broke the protocol gets the close frame but no wait: RFC 6455
	// section 7.1.7, fail the connection. So does one whose read timed out
	// mid-frame: the stream cannot be parsed any more, and the
	// deadlineConn fails every further read at once.
	deadline := time.Time{}
	if errors.Is(err, ErrProtocol) {
		deadline = time.Now() // a socket deadline: the real clock
	}
	s.dc.closeRead(deadline)
	code, reason := CloseFrame(err)
	s.conn.Close(code, reason)
}

func (s *Session) stopTimers() {
	s.timerMu.Lock()
	defer s.timerMu.Unlock()
	for _, t := range [...]timer{s.pinger, s.lifetime} {
		if t != nil {
			t.Stop()
		}
	}
	s.auth.stop()
}

func isTimeout(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded)
}
