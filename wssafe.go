// Package wssafe turns one message callback into a hardened WebSocket
// endpoint.
//
// You write a [Handler]; [New] wraps it in everything a production endpoint
// needs (origin checks, limits, timeouts, keepalive, UTF-8 validation, panic
// recovery, structured logging, graceful shutdown) and returns an
// [*Endpoint], an http.Handler for any router:
//
//	ep, err := wssafe.New(wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
//		return s.WriteText(ctx, "Server received: "+m.Text())
//	}), nil)
//	if err != nil {
//		log.Fatal(err)
//	}
//	mux.Handle("/ws", ep)
//
// Per-message concerns compose as [Middleware], in the shape of http
// middleware; see [Chain].
//
// wssafe is built on github.com/coder/websocket.
//
// # Errors and close codes
//
// A callback's error ends its session with the close code that [CloseFrame]
// assigns: a [*CloseError] keeps its code, the package's sentinels map to
// theirs (ErrMessageTooBig 1009, ErrInvalidUTF8 1007, ErrUnsupportedType
// 1003, ErrRateLimited and the other policy errors 1008, ErrInvalidToken and
// ErrTokenExpired 3000, ErrForbidden 3003, ErrAuthTimeout and
// ErrPongTimeout 3008, ErrShutdown 1001), anything else closes 1011 with a
// generic reason. A [*MessageError] or [*FieldError] is the exception: the
// client gets a JSON error reply and the session goes on. Close reasons are
// short fixed strings; error text, tokens and payloads are never sent to the
// peer. Handshake refusals are HTTP statuses: 403 (origin, IP, TLS), 401
// (token), 429 and 503 (caps and rates, with Retry-After).
//
// # Authentication
//
// [Options.Auth] binds every session to a JWT verified with
// github.com/lestrrat-go/jwx/v3 before the callback sees a message: from
// the Authorization header, a subprotocol, a cookie or the first message.
// [Session.Subject] and [Session.Claims] (or [ClaimsFromContext]) carry the
// verified identity; the session closes 3000 when the token expires, unless
// the client refreshes it in-band; [Endpoint.CloseSubject] revokes.
//
// # Sessions, the Hub and monitoring
//
// Every live [Session] is in the endpoint's [Hub]: count, list, find by ID
// or subject, close, broadcast through bounded send queues, and publish to
// a cluster through a [Backplane]. [Endpoint.Stats] counts what happened;
// an [Observer] sees each event as it happens.
//
// # Validation and hashing
//
// [Validate] runs a chain of [Validator] ([MaxBytes], [UTF8], [ValidJSON], yours)
// before the callback; [JSON] decodes each message strictly into your type
// and calls its Validate method, so the callback receives a value, not
// bytes; a [Router] dispatches {"type": ...} envelopes to typed handlers.
// Field validators ([Email], [URL], [Length], [Chars], [Pattern], [Range],
// [OneOf]) return a [*FieldError]. An invalid message gets a JSON error
// reply with a stable code (CodeInvalidMessage ...), is logged at Warn with
// event "invalid_message", its field and rule (never its value), and
// counts against [Options.InvalidMessages].
//
// [Integrity] refuses messages without a valid HMAC-SHA256 ([Signer]);
// [Dedup] refuses replays. Hashing is not password storage (use argon2id
// or bcrypt) and not encryption: that is TLS, and [Options.RequireTLS]
// refuses plain ws:// handshakes.
//
// # Security
//
// The zero [Options] is the secure configuration. Each default, and what
// turning it off costs:
//
//   - Origin: only same-origin browser handshakes are accepted (requests
//     without an Origin header, i.e. non-browser clients, pass). Widening it
//     with OriginPatterns lets the listed sites open sockets with the user's
//     cookies; InsecureSkipOriginCheck lets every site do so (cross-site
//     WebSocket hijacking), acceptable only when no ambient credential
//     (cookie, client certificate) authenticates the socket.
//   - Read limit: 32 KiB per message, counted after decompression. A larger
//     message closes 1009. Raising it raises the memory a single client can
//     pin.
//   - UTF-8: text messages must be valid UTF-8 (RFC 6455 requires it;
//     github.com/coder/websocket does not check) or the session closes 1007.
//     InsecureSkipUTF8Check hands unchecked bytes to the callback.
//   - Message timeout: a message that has started must complete within 10 s
//     or the session closes 1008; without it a client can hold a session
//     forever with a trickle of empty continuation frames.
//   - Ping rate: received pings are limited (5/s, burst 20); a flood closes
//     1008 instead of making the server write pongs without end.
//   - Keepalive: a ping every 20 s, close 3008 "timeout" when no pong
//     arrives within 20 s, so dead peers do not hold resources.
//   - Write timeout: a write blocked for 10 s (15 s at most: the deadline is
//     renewed lazily) drops the peer instead of blocking a writer forever.
//   - Panics in the callback are recovered, logged with their stack, and
//     close only their own session with 1011.
//   - Logs never contain payloads or tokens: [Redacted] values log a length
//     and a keyed fingerprint.
//   - Send queue: 256 messages and 1 MiB per session for [Session.Send] and
//     [Hub.Broadcast]; a peer that does not keep up is closed 1008 "slow
//     consumer" instead of stalling broadcasts or growing memory.
//   - Client address: forwarding headers are ignored unless the peer is
//     one of TrustedProxies, so clients cannot choose their address.
//   - Security log lines (Warn) are limited to one per client address and
//     event per second, with a count of the suppressed ones, and 100 per
//     second overall: a flood of bad clients cannot flood the log.
//
// Settings that are off until set: idle timeout, maximum session lifetime,
// IP allow and deny lists, connection caps (total, per address, per
// subject), handshake rate per address, message and byte rates, and
// authentication. A public endpoint should set them; [Endpoint.Stats] and
// an [Observer] show what they refuse. Once [Options.Auth] is set, its own
// defaults are the strict ones: exp required, algorithms bound to the
// configured keys ("none" never), HMAC secrets of at least 32 bytes,
// query-string tokens refused, 10 s to send a first-message token; see
// [AuthOptions].
package wssafe

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"path"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// MessageType is the type of a WebSocket data message. Its values equal
// github.com/coder/websocket's.
type MessageType = websocket.MessageType

// The data message types.
const (
	MessageText   = websocket.MessageText
	MessageBinary = websocket.MessageBinary
)

// Defaults applied by [New] to zero-valued [Options] fields.
const (
	DefaultReadLimit      = 32 << 10
	DefaultMessageTimeout = 10 * time.Second
	DefaultWriteTimeout   = 10 * time.Second
	DefaultPingInterval   = 20 * time.Second
	DefaultPongTimeout    = 20 * time.Second
	DefaultPingRate       = 5
	DefaultPingBurst      = 20
)

// Rate is a token-bucket limit: Burst events at once, refilled at PerSecond
// events per second.
type Rate struct {
	PerSecond float64
	Burst     int
}

// Options configures an [Endpoint]. The zero value is the secure default
// described in the package documentation; each field documents what its
// zero value means. New copies Options, so changing them afterwards has no
// effect.
type Options struct {
	// OriginPatterns lists additional origins allowed to open a socket from
	// a browser, matched against the Origin host (or "scheme://host" when the
	// pattern contains "://") with path.Match, case-insensitively. The
	// request's own host is always allowed, and requests without an Origin
	// header (non-browser clients) always pass. Zero means same-origin only.
	OriginPatterns []string

	// InsecureSkipOriginCheck accepts browser handshakes from any origin.
	// Any web page the user visits can then open a socket to this endpoint
	// with the user's cookies. Use it only for token-only APIs.
	InsecureSkipOriginCheck bool

	// Subprotocols lists the subprotocols the endpoint negotiates, in order
	// of preference. Zero negotiates none.
	Subprotocols []string

	// ReadLimit is the largest message accepted, in bytes, counted after
	// decompression. A larger message closes the session with 1009.
	// Zero means 32 KiB; it cannot be disabled.
	ReadLimit int64

	// Accept lists the message types the endpoint accepts; another type
	// closes the session with 1003. Zero accepts text and binary.
	Accept []MessageType

	// InsecureSkipUTF8Check passes text messages to the callback without
	// checking that they are valid UTF-8. By default an invalid text
	// message closes the session with 1007.
	InsecureSkipUTF8Check bool

	// MessageTimeout bounds the time from a message's first frame to its
	// last, and the time a started frame (header or payload, data or
	// control) may take to complete; a control frame gets at most 4 s,
	// since coder/websocket drops a connection whose control frame takes 5 s.
	// Both are counted from the first socket read the message or frame
	// needs after it started: one that arrived whole is never timed. Longer
	// closes the session with 1008 "message timeout" (without waiting for
	// the peer's close frame when it stalled mid-frame). Between frames
	// there is no read deadline: keepalive covers an idle peer. Zero means
	// 10 s; negative disables the bound, letting a client hold the session
	// with an endless fragmented message or a frame that never completes.
	MessageTimeout time.Duration

	// WriteTimeout bounds how long a write may stay blocked on a peer that
	// does not read; the connection is then dropped. The deadline is renewed
	// lazily (not per message), so a blocked write fails after between
	// WriteTimeout and 1.5 x WriteTimeout. Zero means 10 s; negative
	// disables it.
	WriteTimeout time.Duration

	// PingInterval is how often the server pings the peer; PongTimeout how
	// long it waits for the pong before closing 3008 "timeout". Zero means
	// 20 s each; a negative PingInterval disables keepalive. Pongs are read
	// by the serve loop, so a callback that runs longer than PongTimeout
	// ends its session: hand long work to a goroutine.
	PingInterval time.Duration
	PongTimeout  time.Duration

	// PingRate limits the pings a peer may send. A peer that exceeds it is
	// closed with 1008. Zero means 5 per second with a burst of 20; a
	// negative PerSecond disables the limit.
	PingRate Rate

	// IdleTimeout closes a session (3008 "idle timeout") when no data
	// message arrives for this long. Pings and pongs do not count as
	// activity. Zero disables it.
	IdleTimeout time.Duration

	// MaxLifetime closes a session with 1001 once it has been open this
	// long, making clients reconnect (and re-authenticate). Zero disables it.
	MaxLifetime time.Duration

	// InvalidMessages is the budget of [MessageError] replies: exceeding
	// Burst within the refill rate closes the session with 1008. Zero means
	// 10 per minute; a negative Burst closes at the first invalid message
	// (strict mode).
	InvalidMessages Rate

	// OnOpen, if set, runs after the handshake and before the first message
	// is read. Returning an error closes the session with the code
	// [CloseFrame] assigns to it.
	OnOpen func(s *Session) error

	// OnClose, if set, runs once when a session has ended, with the error
	// that ended it (nil for a clean close initiated by the peer).
	OnClose func(s *Session, err error)

	// TrustedProxies lists the networks (CIDR, e.g. "10.0.0.0/8") of
	// reverse proxies whose forwarding headers (X-Forwarded-For, Forwarded,
	// X-Forwarded-Proto) are believed. Headers from any other peer are
	// ignored: they are trivially spoofed. Zero trusts no proxy.
	TrustedProxies []string

	// RequireTLS refuses, with HTTP 403 and a Warn log (event
	// "tls_required"), handshakes that did not arrive over TLS: the request
	// must have come over https/wss, or from a peer in TrustedProxies that
	// says so with "X-Forwarded-Proto: https" (or Forwarded: proto=https).
	// Zero accepts plain ws://, where tokens, cookies and messages cross
	// the network readable and alterable by anyone on the path.
	RequireTLS bool

	// Auth, if set, binds every session to a verified JWT: see
	// [AuthOptions]. Nil means the endpoint does not authenticate; every
	// session then has an empty [Session.Subject].
	Auth *AuthOptions

	// ForwardedHeader names the header a trusted proxy writes the client
	// address into: "X-Forwarded-For" (the zero value) or "Forwarded"
	// (RFC 7239). Only that one header is read: a proxy that sets one and
	// passes the other through from the client would otherwise let the
	// client choose its own address.
	ForwardedHeader string

	// AllowIPs, if set, lists the only client networks allowed to connect,
	// as CIDR prefixes ("192.0.2.0/24", "2001:db8::/32") or single
	// addresses. DenyIPs lists networks that are refused; it wins over
	// AllowIPs. A refused client gets HTTP 403 before the upgrade. The client
	// address is the peer's, or the one a trusted proxy reports (see
	// TrustedProxies). Zero allows every address.
	AllowIPs []string
	DenyIPs  []string

	// HandshakeRate limits the handshakes one client address may start
	// (an IPv6 client counts by its /64, which one host controls); over it
	// the client gets HTTP 429 with Retry-After. At most a bounded number
	// of addresses is tracked, and idle ones expire, so spoofed or rotating
	// sources cannot grow memory. Zero disables the limit.
	HandshakeRate Rate

	// MaxConns caps the sessions of the endpoint, handshakes in progress
	// included; over it a handshake gets HTTP 503 with Retry-After. MaxConnsPerIP caps them per client
	// address (an IPv6 client counts by its /64) and MaxConnsPerSubject per
	// authenticated subject; over either the answer is HTTP 429 with
	// Retry-After, or, when the subject is only known from the first
	// message, close 1008 "too many connections". Zero means no cap.
	MaxConns           int
	MaxConnsPerIP      int
	MaxConnsPerSubject int

	// MessageRate limits the data messages one session may send;
	// SubjectMessageRate limits those of all sessions of one subject
	// together, so five tabs do not get five budgets; ByteRate limits the
	// bytes per second one session may send. Exceeding any closes the
	// session with 1008 "rate limit exceeded". A zero Burst means the
	// PerSecond rate rounded up (for ByteRate: ReadLimit, the smallest
	// burst that lets a full-size message through). Zero disables each.
	MessageRate        Rate
	SubjectMessageRate Rate
	ByteRate           Rate

	// SendQueueMessages and SendQueueBytes bound the messages queued for
	// one session by [Session.Send] and [Hub.Broadcast] and not yet
	// written. A peer that reads so slowly that its queue fills is closed
	// with 1008 "slow consumer", so that one slow reader neither stalls a
	// broadcast nor grows memory. Zero means 256 messages and 1 MiB; the
	// queue cannot be unbounded.
	SendQueueMessages int
	SendQueueBytes    int

	// Observer, if set, is told about every handshake, session, message,
	// limit hit, validation failure and panic; see [Observer]. Zero
	// observes nothing and costs nothing; [Endpoint.Stats] counts either way.
	Observer Observer

	// Backplane carries [Hub.Publish] to every node of a cluster. Zero
	// applies published operations to this process's Hub only.
	Backplane Backplane

	// SecurityLogInterval is the minimum interval between two Warn lines
	// with the same event from the same client address; the lines in
	// between are counted and the count is logged with the next one as
	// "suppressed". All sources together get at most 100 such lines per
	// second. Zero means 1 s; negative logs every line, letting a hostile
	// client write to the log as fast as it can misbehave.
	SecurityLogInterval time.Duration

	// Logger receives wssafe's logs. Zero means slog.Default().
	Logger *slog.Logger

	// FingerprintKey keys the fingerprints of redacted values in logs.
	// Zero means a random key per Endpoint: fingerprints then correlate
	// within one process only. Set it (32 random bytes, kept secret) to
	// correlate across processes.
	FingerprintKey []byte

	// now and afterFunc are the clock; tests inject one. Network
	// deadlines do not use them.
	now       func() time.Time
	afterFunc func(time.Duration, func()) timer
	// maxSources bounds the per-address state of the handshake limiter and
	// the log limiter; tests lower it.
	maxSources int
	// testSubject, set only by tests, names the subject of a handshake, as
	// handshake-time authentication does; afterAccept defers admission to
	// the serve loop, as first-message authentication does.
	testSubject func(r *http.Request) (subject string, afterAccept bool)
}

// config is Options with every default resolved; it never changes after New.
type config struct {
	Options
	accept     [3]bool // indexed by MessageType
	trusted    []netip.Prefix
	strictMode bool
	auth       *authenticator // nil when Options.Auth is nil
	guardConfig
	writeTicks *writeTicker     // nil when WriteTimeout is negative; see deadline.go
	limitNow   func() time.Time // the message limiters' clock; see limit.go
	limited    bool             // a message or byte rate is set
}

func (o *Options) resolve() (*config, error) {
	c := &config{}
	if o != nil {
		c.Options = *o
	}
	c.OriginPatterns = append([]string(nil), c.OriginPatterns...)
	for _, p := range c.OriginPatterns {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("wssafe: origin pattern %q: %w", p, err)
		}
	}
	if c.ReadLimit < 0 {
		return nil, errors.New("wssafe: ReadLimit must not be negative (zero means 32 KiB)")
	}
	setDefault(&c.ReadLimit, DefaultReadLimit)
	setDefault(&c.MessageTimeout, DefaultMessageTimeout)
	setDefault(&c.WriteTimeout, DefaultWriteTimeout)
	setDefault(&c.PingInterval, DefaultPingInterval)
	setDefault(&c.PongTimeout, DefaultPongTimeout)
	if c.PingRate == (Rate{}) {
		c.PingRate = Rate{PerSecond: DefaultPingRate, Burst: DefaultPingBurst}
	}
	if c.InvalidMessages == (Rate{}) {
		c.InvalidMessages = Rate{PerSecond: 10.0 / 60, Burst: 10}
	}
	c.strictMode = c.InvalidMessages.Burst < 0
	if err := c.resolveAccept(); err != nil {
		return nil, err
	}
	if err := c.resolveTrusted(); err != nil {
		return nil, err
	}
	if err := c.resolveGuards(); err != nil {
		return nil, err
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if len(c.FingerprintKey) == 0 {
		c.FingerprintKey = make([]byte, 32)
		rand.Read(c.FingerprintKey)
	}
	c.limitNow = c.now
	if c.now == nil {
		c.now = time.Now
		c.limitNow = monotonicClock()
	}
	c.writeTicks = newWriteTicker(c.WriteTimeout)
	c.limited = c.limitsMessages()
	if c.afterFunc == nil {
		c.afterFunc = afterFunc
	}
	// Last: it may start a JWKS refresher, which nothing after it may leak.
	if err := c.resolveAuth(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *config) resolveAccept() error {
	if len(c.Accept) == 0 {
		c.accept[MessageText], c.accept[MessageBinary] = true, true
		return nil
	}
	for _, t := range c.Accept {
		if t != MessageText && t != MessageBinary {
			return fmt.Errorf("wssafe: Accept: unknown message type %d", int(t))
		}
		c.accept[t] = true
	}
	return nil
}

func (c *config) resolveTrusted() error {
	c.TrustedProxies = append([]string(nil), c.TrustedProxies...)
	for _, p := range c.TrustedProxies {
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			return fmt.Errorf("wssafe: TrustedProxies: %q is not a CIDR prefix (use 10.0.0.1/32 for one address): %w", p, err)
		}
		c.trusted = append(c.trusted, pfx.Masked())
	}
	return nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// An Endpoint serves hardened WebSocket sessions. It is an http.Handler;
// mount it on any router. It is safe for concurrent use.
type Endpoint struct {
	cfg     *config
	handler Handler
	log     *slog.Logger
	fp      *fingerprinter
	accept  websocket.AcceptOptions

	closing    atomic.Bool
	hub        *Hub
	done       chan struct{} // closed when the last session ends after shutdown began
	stats      endpointStats
	handshakes *sourceLimiter // per-address handshake buckets; nil when HandshakeRate is off
	logs       *logLimiter    // nil when SecurityLogInterval is negative
}

// New returns an Endpoint that serves h with opts. A nil opts is the secure
// default. New returns an error, and no Endpoint, when opts is unsafe or
// inconsistent; the error says what to change.
func New(h Handler, opts *Options) (*Endpoint, error) {
	if h == nil {
		return nil, errors.New("wssafe: New needs a Handler")
	}
	cfg, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	e := &Endpoint{
		cfg:        cfg,
		log:        cfg.Logger,
		fp:         newFingerprinter(cfg.FingerprintKey),
		done:       make(chan struct{}),
		handshakes: newSourceLimiter(cfg.HandshakeRate, cfg.maxSources),
		logs:       newLogLimiter(cfg),
	}
	e.hub = newHub(e)
	// Recovery is the outermost middleware; the serve loop adds the message
	// limits and the Observer's timing around it: see dispatch.
	e.handler = recoverer(e.refresher(h))
	e.accept = websocket.AcceptOptions{
		Subprotocols:       cfg.Subprotocols,
		OriginPatterns:     cfg.OriginPatterns,
		InsecureSkipVerify: cfg.InsecureSkipOriginCheck,
	}
	if cfg.InsecureSkipOriginCheck {
		logEvent(context.Background(), e.log, slog.LevelWarn, EventInsecureConfig,
			"wssafe: origin check disabled; any web page can open sockets to this endpoint")
	}
	return e, nil
}

// ServeHTTP performs the handshake and serves the session until it ends.
// The guards run in order of cost and all answer before Accept, on the
// request's goroutine: a refused client costs no goroutine of ours.
func (e *Endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if e.closing.Load() {
		e.refuseShutdown(r)
		refuse(w, http.StatusServiceUnavailable, 5*time.Second)
		return
	}
	ip := e.cfg.clientIP(r)
	if !e.guard(w, r, ip) || !e.requireTLS(w, r) {
		return
	}
	s := newSession(e, r)
	if !e.reserve(w, r, s, ip) {
		return
	}
	defer e.untrack(s) // releases the reservation whatever happens next
	if !e.identify(w, r, s) {
		return
	}
	hw := &hijackCapture{ResponseWriter: w, cfg: e.cfg}
	opts := e.accept
	opts.OnPingReceived = s.onPing
	conn, err := websocket.Accept(hw, r, &opts)
	if err != nil {
		// Accept has written the HTTP error (400, 403, 426 ...).
		e.log.LogAttrs(r.Context(), slog.LevelDebug, "wssafe: handshake failed",
			slog.String("remote", r.RemoteAddr), slog.Any("error", err))
		e.record(Observation{Kind: HandshakeRefused, Reason: EventHandshakeFailed, ClientIP: ip})
		return
	}
	s.attach(conn, hw.conn)
	if !e.track(s) {
		e.refuseShutdown(r)
		s.closeWith(ErrShutdown)
		s.finish()
		return
	}
	s.serve()
}

// identify runs handshake-time authentication and, once the subject is
// known, the per-subject admission. It answers the refusals itself (401,
// 403, 429). Without a token at the handshake the subject comes from the
// first message, and admission runs in the serve loop.
func (e *Endpoint) identify(w http.ResponseWriter, r *http.Request, s *Session) bool {
	if e.cfg.testSubject != nil {
		return e.identifyForTest(w, r, s)
	}
	if !e.authenticateHandshake(w, r, s) {
		return false
	}
	return s.subject == "" || e.admitEarly(w, r, s)
}

// refuse answers a handshake with status and a Retry-After header.
func refuse(w http.ResponseWriter, status int, retry time.Duration) {
	w.Header().Set("Retry-After", fmt.Sprint(int((retry+time.Second-1)/time.Second)))
	http.Error(w, http.StatusText(status), status)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
