package wssafe

// The Session type: its making, accessors and values, its serve sequence,
// keepalive and its lazily made limiters.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"log/slog"
	"net/http"
	"net/netip"
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
	zhot       bool        // zctx compressed a message since the release timer last looked; guarded by wmu (here, it fills headerOnce's padding)
	redacted   http.Header // header without credentials, made on first use

	// subject is the verified identity; it is set once, before the session
	// is registered or handed to the callback, and never changes.
	subject string
	auth    authState  // claims, expiry timer; see authsession.go
	ip      netip.Addr // the client's address: the peer's, or a trusted proxy's report

	reg     registration    // the Hub's bookkeeping, guarded by the Hub's mutex
	limits  messageLimits   // per-message rate limiters, see limit.go
	out     sendQueue       // the bounded outbound queue, see queue.go
	traffic trafficCounters // messages and bytes in and out, see stats.go

	ctx    context.Context // cancelled, with the ending error as cause, when the session ends
	cancel context.CancelCauseFunc

	conn *websocket.Conn
	dc   *deadlineConn // the hijacked connection, which arms the read and write deadlines
	rbuf *[]byte       // the pooled read buffer held while a message is handled
	wmu  sync.Mutex    // orders direct writes with the send queue's drain (queue.go)
	zctx *deflater     // the compressor kept under context takeover (compress_write.go); guarded by wmu, with zhot

	values sync.Map

	pings   *rate.Limiter
	pongs   *rate.Limiter // unsolicited pongs, in a bucket of their own at PingRate
	invalid *rate.Limiter
	// pingOut is set while a keepalive ping awaits its pong: the first pong
	// to arrive then is not counted against the pong budget.
	pingOut atomic.Bool

	closeOnce sync.Once
	hungUp    sync.WaitGroup // done once the connection is closed: one hangUp, any number of waiters
	timerMu   sync.Mutex     // guards the timers against the goroutines they start
	pinger    timer          // on the endpoint's clock, like every timer
	lifetime  timer
	zidle     timer // releases zctx once idle (compress_write.go); made on first use
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
	}
	s.hungUp.Add(1) // hangUp, which the session's end starts once, marks it done
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

// keepalive runs on the ping timer's goroutine, which exists only while a
// ping is in flight: an idle session costs a timer, not a goroutine.
func (s *Session) keepalive() {
	// The pong timeout is a timer of the endpoint's clock, not a context
	// deadline (which only the real clock can end). The context is not the
	// session's: coder/websocket closes the connection when the context of
	// a write in progress ends, which would drop the close frame of a
	// session that ends as the ping goes out. Its end closes the connection
	// anyway, which ends the wait for the pong.
	ctx, cancel := context.WithCancel(context.Background())
	pongTimer := s.ep.cfg.clock.afterFunc(s.ep.cfg.PongTimeout, cancel)
	s.pingOut.Store(true)
	err := s.conn.Ping(ctx)
	s.pingOut.Store(false)
	pongTimer.Stop()
	cancel()
	if s.ctx.Err() != nil {
		return
	}
	if peerGone(err) { // the ping's write found the peer gone: not a timeout
		s.closeWith(err)
		return
	}
	if err != nil {
		logEvent(s.ctx, s.log, slog.LevelWarn, EventPongTimeout, "wssafe: no pong within the timeout")
		s.closeWith(ErrPongTimeout)
		return
	}
	s.timerMu.Lock()
	if s.ctx.Err() == nil { // stopTimers has not run: rearm
		s.pinger.Reset(s.ep.cfg.PingInterval)
	}
	s.timerMu.Unlock()
}

// opening runs what comes before the read loop: first-message
// authentication, admission and OnOpen (see Endpoint.run).
func (s *Session) opening() error {
	if err := s.authenticate(); err != nil {
		return err
	}
	return s.open()
}

func (s *Session) open() error {
	if err := s.ep.admit(s); err != nil {
		return err // the subject is over its connection cap
	}
	logEvent(s.ctx, s.log, slog.LevelDebug, EventSessionOpen, "wssafe: session open",
		slog.String("path", s.path), slog.String("subprotocol", s.conn.Subprotocol()))
	if a := s.ep.cfg.auth; a != nil && a.welcome != "" {
		if err := s.WriteText(s.ctx, a.welcome); err != nil {
			return err
		}
	}
	if s.ep.cfg.OnOpen != nil {
		return s.ep.cfg.OnOpen(s)
	}
	return nil
}

// ClientIP returns the client's address: the peer's, or the address a
// trusted proxy reported (see [Options.TrustedProxies]). It is the address
// the IP lists, caps and rate limits apply to.
func (s *Session) ClientIP() netip.Addr { return s.ip }
