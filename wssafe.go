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
// peer. Handshake refusals are HTTP statuses: 400 (a request that carries
// a body, refused before any other check and never read), 403 (origin,
// IP, TLS), 421 (a Host not in AllowedHosts), 401 (token), 429 and 503
// (caps and rates, with Retry-After); each closes the connection
// (Connection: close) instead of letting net/http wait to drain a body.
//
// # Authentication
//
// [Options.Auth] binds every session to a JWT verified with
// github.com/lestrrat-go/jwx/v3 before the callback sees a message: from
// the Authorization header, a subprotocol, a cookie or the first message.
// [Session.Subject] and [Session.Claims] (see [SessionFromContext]) carry the
// verified identity; the session closes 3000 when the token expires, unless
// the client refreshes it in-band; [Hub.CloseSubject] revokes.
//
// # Sessions, the Hub and monitoring
//
// Every live [Session] is in the endpoint's [Hub]: list, find by ID or
// subject, revoke a subject, broadcast through bounded send queues. The
// server joins a session to named topics ([Session.Join]: a room, the
// user's own feed; clients cannot subscribe themselves), and
// [Hub.Publish] reaches a topic's sessions. [Endpoint.Stats] counts what
// happened; [Options.Observer] sees each event as it happens.
//
// # Cluster
//
// With [Options.Backplane] several processes serve one endpoint: a
// publication reaches the topic's sessions on every node, a subject's
// close and revocation reach every node, MaxConnsPerSubject and
// [Hub.Online] count across the cluster. The core guarantees: a node
// delivers to its own sessions first and at once, never through the
// broker; a topic reaches only the sessions the receiving node itself
// joined to it, whatever a sender claims; delivery across nodes is at
// most once (a client that must not miss a message fetches what it missed
// when it reconnects); an unreachable broker never blocks a handler or
// an open session: each node goes on alone, and only new handshakes under
// a per-subject cap are refused (503, fail closed). Hub.Broadcast and the
// lookups (Sessions, ByID, BySubject) stay local.
// [Endpoint.ShutdownWith] makes an http.Server's Shutdown close every
// session with 1001 "going away"; [Endpoint.Shutdown] waits for them
// within a deadline.
//
// # Validation and hashing
//
// [JSON] decodes each message strictly into your type, within
// [Options.JSONLimits], and calls its Validate method, so the callback
// receives a value, not bytes; a [Router] dispatches {"type": ...}
// envelopes to typed handlers. [Validate] runs a chain of [Validator]
// ([MaxBytes], yours) before an untyped callback.
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
//     (cookie, client certificate) authenticates the socket. New refuses
//     patterns that can never match (a path, a port without a host).
//   - Cookie authentication: New refuses InsecureSkipOriginCheck and every
//     origin pattern that admits sites you do not own (a bare "*", a
//     wildcard over a public suffix such as "*.com" or "*.github.io", "?"
//     and "[...]" classes); a pattern must end in a literal registrable
//     domain. With a cookie or a client certificate, an http:// page (which
//     anyone on its path can rewrite) never opens a socket on an endpoint
//     reached over TLS, unless a pattern names that http:// origin (under
//     cookie authentication only with InsecureAllowHTTPOrigins).
//   - Read limit: 32 KiB per message, counted after decompression. A larger
//     message closes 1009. Raising it raises the memory a single client can
//     pin.
//   - UTF-8: text messages must be valid UTF-8 (RFC 6455 requires it;
//     github.com/coder/websocket does not check) or the session closes 1007.
//     InsecureSkipUTF8Check hands unchecked bytes to the callback.
//   - Message timeout: a message that has started must complete within 10 s
//     or the session closes 1008; without it a client can hold a session
//     forever with a trickle of empty continuation frames. So must every
//     frame that has started (its header, a control frame's payload within
//     4 s), so a stall in mid-frame is cut too.
//   - Ping rate: received pings are limited (5/s, burst 20); a flood closes
//     1008 instead of making the server write pongs without end.
//     Unsolicited pongs get a bucket of the same rate (the pong answering
//     the keepalive's ping is free); a flood closes 1008. Only
//     InsecureNoPingLimit turns both off.
//   - Invalid messages: up to 10 per minute get a JSON error reply, then
//     the session closes 1008; CloseOnInvalidMessage closes at the first.
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
//     one of TrustedProxies, so clients cannot choose their address (an
//     Info line "untrusted_forwarded" says so, once per peer per minute);
//     New refuses a list that covers every address unless
//     InsecureTrustAllProxies says so.
//   - Security log lines (Warn and Error, at the handshake or in a
//     session) are limited to one per client address and event per
//     second, with a count of the suppressed ones; to 10 per second per
//     event and 100 per second overall, except that an event's first line
//     in a second always passes: a flood of bad clients cannot flood the
//     log, nor hide one kind of event behind another. Stats and the
//     Observer count every event, logged or not.
//
// Every [Rate] field follows one rule: a zero Rate{} is the field's
// default, a zero Burst is PerSecond rounded up, and New refuses NaN,
// infinite, negative and never-refilling values. No Rate is turned off by
// a negative number: the two rate limits that are on by default are
// switched by named fields (InsecureNoPingLimit, CloseOnInvalidMessage).
// Options that widen what a peer may do are named Insecure..., and New
// logs those that expose the endpoint most with a Warn line, event
// "insecure_config". (A negative MessageTimeout, WriteTimeout or
// PingInterval still turns that timer off, as its field says.)
//
// Settings that are off until set: idle timeout, maximum session lifetime,
// IP allow and deny lists, allowed hosts (against DNS rebinding, for
// endpoints on localhost or a private network), connection caps (total,
// per address, per subject), handshake rate per address, message and byte
// rates, and authentication. A public endpoint should set them;
// [Endpoint.Stats] and [Options.Observer] show what they refuse. The
// per-subject cap and rate need authentication, or New fails. Once
// [Options.Auth] is set, its own defaults are the strict ones: exp
// required, algorithms bound to the configured keys ("none" never), HMAC
// secrets of at least 32 random bytes, query-string tokens refused, 10 s
// to send a first-message token; see [AuthOptions].
package wssafe

// Options, their resolution into the config every other file reads, Endpoint
// and New.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
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
	DefaultReadBufferSize = 4 << 10
	DefaultMessageTimeout = 10 * time.Second
	DefaultWriteTimeout   = 10 * time.Second
	DefaultPingInterval   = 20 * time.Second
	DefaultPongTimeout    = 20 * time.Second
	DefaultPingRate       = 5
	DefaultPingBurst      = 20

	DefaultSendQueueMessages   = 256
	DefaultSendQueueBytes      = 1 << 20
	DefaultSecurityLogInterval = time.Second
)

// Options configures an [Endpoint]. The zero value is the secure default
// described in the package documentation; each field documents what its
// zero value means. New copies Options, so changing them afterwards has no
// effect.
type Options struct {
	// Origin and handshake: who may open a socket, on which Host, with which
	// subprotocol, over TLS.

	// OriginPatterns lists additional origins allowed to open a socket from
	// a browser, matched against the Origin host (or "scheme://host" when the
	// pattern contains "://") with path.Match, case-insensitively. The
	// request's own host is always allowed, and requests without an Origin
	// header (non-browser clients) always pass. Zero means same-origin only.
	//
	// A pattern is a host ("app.example.com", "*.example.com"), optionally
	// with a port ("example.com:8443", "example.com:*") or a scheme
	// ("https://app.example.com"); an IPv6 address needs its brackets
	// escaped (`\[::1\]:8080` as a raw string), since [...] is a
	// character class. New refuses a pattern that can never match: an
	// empty one, one with a path or a trailing slash, a port or a scheme
	// without a host, a non-ASCII host (write its punycode form).
	//
	// When a cookie authenticates (AuthOptions.FromCookie), every listed site
	// can open sockets as the user, so New also refuses every pattern that
	// lets an arbitrary site in. Each pattern must end in a literal
	// registrable domain ("example.com", not a public suffix such as "com",
	// "co.uk" or "github.io"), with * only as whole labels left of it
	// ("*.app.example.com") or as the whole port, and the names directly
	// under a wildcard must not be public suffixes themselves
	// ("*.kawasaki.jp" is refused: the list makes every "x.kawasaki.jp"
	// one); "localhost" and IPv4 addresses are accepted when written in
	// full, without wildcards. The
	// other path.Match metacharacters (?, [...], \) are refused under
	// cookie authentication: they match hosts nobody meant to list. The
	// scheme, if any, must be https, or http with InsecureAllowHTTPOrigins.
	//
	// The scheme of the Origin counts when an ambient credential rides on
	// the socket (cookie authentication, or a TLS client certificate): on
	// an endpoint reached over TLS (directly, or as a trusted proxy reports
	// with X-Forwarded-Proto or Forwarded), an http:// page, which anyone on
	// its network path can rewrite, is refused, same host or not, unless a
	// pattern names its http:// origin explicitly; patterns without a
	// scheme match https:// origins only. An https:// page on a plain-http
	// endpoint (TLS ended at a proxy) is accepted. Without an ambient
	// credential the scheme is not checked, as coder/websocket does not:
	// the page must then hold a token itself, and whoever holds a token
	// can connect from anywhere, browser or not.
	OriginPatterns []string

	// InsecureSkipOriginCheck accepts browser handshakes from any origin.
	// Any web page the user visits can then open a socket to this endpoint
	// with the user's cookies. Use it only for token-only APIs.
	InsecureSkipOriginCheck bool

	// InsecureAllowHTTPOrigins lets an OriginPatterns entry name an http://
	// origin ("http://app.example.com") under cookie authentication. Such a
	// page can be rewritten by anyone on its network path, who then opens
	// sockets with the user's cookie, on the TLS endpoint too; New logs a
	// warning for each such pattern. Zero (false) makes New refuse http://
	// patterns when a cookie authenticates.
	InsecureAllowHTTPOrigins bool

	// AllowedHosts, if set, lists the only Host header values a handshake
	// may carry, as "example.com", "example.com:8443", "127.0.0.1:8080" or
	// "[::1]:8080". A handshake for another host gets HTTP 421 Misdirected
	// Request (event "host_refused"). It defeats DNS rebinding: a page on
	// attacker.example whose name is made to resolve to 127.0.0.1 or a
	// private address is same-origin with itself, so the origin check
	// passes it, but its Host header still says attacker.example. Set it
	// for endpoints on localhost or a private network. Names match without
	// case and without a trailing dot; an entry without a port matches
	// every port, one with a port matches that port, and a Host without a
	// port (a browser omits 80 and 443) matches entries for port 80 or 443.
	// Behind a proxy that rewrites Host, list what the proxy sends. Zero
	// accepts every Host.
	AllowedHosts []string

	// Subprotocols lists the application subprotocols the endpoint may
	// select (Sec-WebSocket-Protocol, RFC 6455 section 1.9), in the
	// server's order of preference, which is the one that wins: the first
	// entry of this list that the client offered (compared
	// case-insensitively, among the comma-separated entries of all its
	// Sec-WebSocket-Protocol lines) is selected, whatever the client's
	// own order, and echoed in the client's spelling, which
	// [Session.Subprotocol] returns. When none matches, or the client
	// offers none, the handshake still succeeds with no subprotocol ("");
	// a browser that offered some then fails the connection, while other
	// clients may go on, so a callback that needs one must check
	// Session.Subprotocol. Zero selects none for every handshake. With
	// [FromSubprotocol] authentication, zero means
	// []string{[DefaultSubprotocol]}, and New refuses an entry that looks
	// like a token entry ("bearer." or the Kubernetes prefix): the
	// client's token entry is read, never selected or echoed.
	Subprotocols []string

	// RequireTLS refuses, with HTTP 403 and a Warn log (event
	// "tls_required"), handshakes that did not arrive over TLS: the request
	// must have come over https/wss, or from a peer in TrustedProxies that
	// says so with "X-Forwarded-Proto: https" (or Forwarded: proto=https).
	// Zero accepts plain ws://, where tokens, cookies and messages cross
	// the network readable and alterable by anyone on the path.
	RequireTLS bool

	// Proxies and addresses: whose forwarding headers are believed, and
	// which client addresses may connect.

	// TrustedProxies lists the networks (CIDR, e.g. "10.0.0.0/8") of
	// reverse proxies whose forwarding headers (X-Forwarded-For, Forwarded,
	// X-Forwarded-Proto) are believed. Headers from any other peer are
	// ignored: they are trivially spoofed; a handshake that carries one
	// logs "untrusted_forwarded" at Info (once per peer per minute), so
	// that a proxy missing from this list, behind which every client would
	// share the proxy's address and caps, is noticed. Zero trusts no
	// proxy.
	TrustedProxies []string

	// ForwardedHeader names the header a trusted proxy writes the client
	// address into: "X-Forwarded-For" (the zero value) or "Forwarded"
	// (RFC 7239). Only that one header is read: a proxy that sets one and
	// passes the other through from the client would otherwise let the
	// client choose its own address.
	ForwardedHeader string

	// InsecureTrustAllProxies lets TrustedProxies cover every address, for
	// a deployment whose every peer is a proxy it runs (nothing else can
	// reach the listener); New logs a warning. False (the default) refuses
	// such a list.
	InsecureTrustAllProxies bool

	// AllowIPs, if set, lists the only client networks allowed to connect,
	// as CIDR prefixes ("192.0.2.0/24", "2001:db8::/32") or single
	// addresses. DenyIPs lists networks that are refused; it wins over
	// AllowIPs. A refused client gets HTTP 403 before the upgrade. The client
	// address is the peer's, or the one a trusted proxy reports (see
	// TrustedProxies). Zero allows every address.
	AllowIPs []string
	DenyIPs  []string

	// Authentication.

	// Auth, if set, binds every session to a verified JWT: see
	// [AuthOptions]. Nil means the endpoint does not authenticate; every
	// session then has an empty [Session.Subject].
	Auth *AuthOptions

	// Limits: what one message, one client, one subject and the endpoint may
	// cost.

	// ReadLimit is the largest message accepted, in bytes, counted after
	// decompression. A larger message closes the session with 1009.
	// Zero means 32 KiB; it cannot be disabled. A session in the middle
	// of a message may hold up to ReadLimit bytes for it, and with
	// Compression it takes only ReadLimit/MaxInflationRatio bytes on the
	// wire to make it do so: size memory for MaxConns x ReadLimit.
	ReadLimit int64

	// ReadBufferSize is the size in bytes of the buffer a connection reads
	// the socket into, through which coder/websocket reads every frame. On
	// a plain TCP (or Unix) connection the buffer is borrowed from a pool
	// for each read and returned once its bytes are consumed: an idle
	// connection, waiting for its peer, holds none (the wait happens in
	// the runtime's poller, without a buffer), so the size costs memory
	// only while bytes are unread, at most one buffer per connection. A
	// TLS connection, or one wrapped by a listener, keeps its buffer for
	// its whole life. A larger buffer takes a large message, or several
	// small ones, from the socket in fewer reads, and lets a message that
	// arrived whole be read without arming its deadline (see
	// MessageTimeout). Zero means [DefaultReadBufferSize], 4 KiB, chosen
	// from measurements (bench/PERFORMANCE.md): 32 KiB halves the reads of
	// a 16 KiB message (up to about 8 % more throughput there, nothing
	// measurable at 1 KiB). It must be from 256 bytes to 1 MiB, or New
	// fails. The bytes a client sent with its handshake are kept whatever
	// the size.
	ReadBufferSize int

	// Accept lists the message types the endpoint accepts; another type
	// closes the session with 1003. Zero accepts text and binary.
	Accept []MessageType

	// InsecureSkipUTF8Check passes text messages to the callback without
	// checking that they are valid UTF-8. By default an invalid text
	// message closes the session with 1007.
	InsecureSkipUTF8Check bool

	// JSONLimits bounds every JSON message decoded by [JSON], a [Router] or
	// [Integrity] on this endpoint: nesting depth, keys per object, items
	// per array, number length, checked while the message is tokenized,
	// before anything is built. Zero (or negative) fields mean 32, 256,
	// 1024 and 64; no limit can be switched off. Raising them raises what
	// one message may cost to decode.
	JSONLimits JSONLimits

	// HandshakeRate limits the handshakes one client address may start
	// (an IPv6 client counts by its /64, which one host controls); over it
	// the client gets HTTP 429 with Retry-After. At most a bounded number
	// of addresses is tracked, and idle ones expire, so spoofed or rotating
	// sources cannot grow memory. Zero disables the limit; see [Rate] for
	// a zero Burst.
	HandshakeRate Rate

	// MaxConns caps the sessions of the endpoint, handshakes in progress
	// included; over it a handshake gets HTTP 503 with Retry-After. MaxConnsPerIP caps them per client
	// address (an IPv6 client counts by its /64) and MaxConnsPerSubject per
	// authenticated subject; over either the answer is HTTP 429 with
	// Retry-After, or, when the subject is only known from the first
	// message, close 1008 "too many connections". Zero means no cap.
	// MaxConnsPerSubject needs Auth (without it there is no subject to
	// count by), or New fails.
	MaxConns           int
	MaxConnsPerIP      int
	MaxConnsPerSubject int

	// MessageRate limits the data messages one session may send;
	// SubjectMessageRate limits those of all sessions of one subject
	// together, so five tabs do not get five budgets; ByteRate limits the
	// bytes per second one session may send. Exceeding any closes the
	// session with 1008 "rate limit exceeded". A zero Burst means the
	// PerSecond rate rounded up (for ByteRate: at least ReadLimit, the
	// smallest burst that lets a full-size message through); see [Rate].
	// Zero disables each. SubjectMessageRate needs Auth (without it there
	// is no subject), or New fails: use MessageRate instead.
	MessageRate        Rate
	SubjectMessageRate Rate
	ByteRate           Rate

	// PingRate limits the pings a peer may send, and, in a bucket of its
	// own at the same rate, the unsolicited pongs (the pong answering the
	// keepalive's own ping is never counted). A peer that exceeds either
	// is closed with 1008 "ping rate exceeded" or "pong rate exceeded".
	// Zero means 5 per second with a burst of 20; see [Rate] for a zero
	// Burst. It cannot be turned off with a Rate value: see
	// InsecureNoPingLimit.
	PingRate Rate

	// InsecureNoPingLimit lets a peer send pings and pongs as fast as it
	// can, making the server write a pong for each ping without end; New
	// logs a warning. PingRate must then be zero. False (the default)
	// limits them by PingRate.
	InsecureNoPingLimit bool

	// InvalidMessages is the budget of [MessageError] replies: exceeding
	// Burst within the refill rate closes the session with 1008 "too many
	// invalid messages". Zero means 10 per minute with a burst of 10; see
	// [Rate] for a zero Burst. The budget cannot be turned off; a generous
	// Rate is the most it can be widened.
	InvalidMessages Rate

	// CloseOnInvalidMessage is strict mode: the first invalid message
	// closes the session with 1008 "too many invalid messages", without a
	// JSON error reply. InvalidMessages must then be zero. False (the
	// default) answers invalid messages within the InvalidMessages budget.
	CloseOnInvalidMessage bool

	// Queues: what may wait to be written to one peer.

	// SendQueueMessages and SendQueueBytes bound the messages queued for
	// one session by [Session.Send] and [Hub.Broadcast] and not yet
	// written. A peer that reads so slowly that its queue fills is closed
	// with 1008 "slow consumer", so that one slow reader neither stalls a
	// broadcast nor grows memory. Zero means 256 messages and 1 MiB; the
	// queue cannot be unbounded.
	SendQueueMessages int
	SendQueueBytes    int

	// Compression: permessage-deflate (RFC 7692), off unless asked for.

	// Compression negotiates permessage-deflate with clients that offer it
	// (browsers, Node's ws and Python's websockets do), without context
	// takeover in either direction: every message is compressed and
	// inflated on its own, so no compression history is shared across
	// messages, and one message's attacker-chosen text cannot reveal
	// another message's secret by its compressed size (CRIME; RFC 7692
	// section 8). A broadcast is then compressed once for every session
	// that negotiated it. What a session negotiated is
	// [Session.Compressed]. Reads are limited after inflation (ReadLimit,
	// ByteRate, MaxInflationRatio); data that does not inflate closes the
	// session with 1007. A message that holds a secret and text an
	// attacker chose is still exposed by its own size (BREACH), whatever
	// the context setting: send it with [Session.WriteUncompressed] or
	// [Session.SendUncompressed]. Memory: a compressed session holds no
	// compressor while idle (each message borrows a pooled one); from its
	// first compressed message on it keeps coder/websocket's 4 KiB
	// inflating buffer and a goroutine stack of 8 KiB instead of 4 (grown
	// by compress/flate's inflater), about 8 KB in all, and it holds a
	// pooled inflater (about 40 KB) while it reads one (SECURITY.md has
	// the measured bounds). Zero (false) negotiates no
	// extension; see SECURITY.md.
	Compression bool

	// CompressionThreshold is the smallest message, in bytes, that is
	// sent compressed on a compressed session; shorter ones go out as
	// they are, since deflate's framing would outweigh what it saves.
	// Zero means 512 bytes; it must not be negative.
	CompressionThreshold int

	// InsecureCompressionContextTakeover lets a compressed session keep
	// its compression history (32 KiB per direction) across messages
	// when the client agrees, which compresses small, similar messages
	// several times better. The cost is CRIME: when text an attacker
	// controls (a chat line, a name, a search echoed back) and a secret
	// (a token, a session value, another user's data) travel in the same
	// direction of one session, the attacker learns the secret byte by
	// byte from the compressed sizes, over TLS too. It also costs memory
	// and CPU: a session holds a compressor of about 1.2 MB (a
	// compress/flate writer) while it writes compressed messages, given
	// back to a pool once it has compressed none for 10 to 20 s (its next
	// message then starts a new history, which RFC 7692 allows), so the
	// compressors take about 1.2 MB times the sessions that wrote a
	// compressed message in the last 20 s; a session whose client
	// compresses with context too keeps that client's 32 KiB window for
	// its life; broadcasts are compressed once per such session instead
	// of once. New logs a warning. False (the default) never takes over
	// context.
	InsecureCompressionContextTakeover bool

	// MaxInflationRatio closes a session with 1009 "message too big"
	// when a compressed message inflates to more than this many times its
	// bytes on the wire: a decompression bomb (a few KiB of deflate
	// inflate to megabytes) is cut off before it is inflated in full. It
	// applies only once the message's inflated size passes
	// [InflationRatioFloor] (64 KiB): small messages reach high ratios
	// without harm (4 KiB of zeros is about 200:1), and ReadLimit bounds
	// every message anyway, so it matters only with ReadLimit above the
	// floor. The check runs every 16 KiB inflated; the compressed count
	// may include up to about 4 KiB that coder/websocket's inflater has
	// read ahead, never less than it consumed, so a bomb is cut off within
	// 100 x 4 KiB of the floor at worst and a real message is never
	// refused for bytes not counted (SECURITY.md). Logged as
	// EventInflationRatio. Zero means 100; it must not be negative.
	MaxInflationRatio int

	// Timeouts: how long a message, a write, a pong, silence and a session
	// may take.

	// MessageTimeout bounds the time from a message's first frame to its
	// last, and the time a started frame (header or payload, data or
	// control) may take to complete; a control frame gets at most 4 s,
	// since coder/websocket drops a connection whose control frame takes 5 s.
	// Both are counted from the first socket read the message or frame
	// needs after it started: one that arrived whole is never timed. Longer
	// closes the session with 1008 "message timeout" (without waiting for
	// the peer's close frame when it stalled mid-frame). Between frames it
	// sets no read deadline: keepalive (and IdleTimeout, if set) covers an
	// idle peer. Zero means
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

	// IdleTimeout closes a session (3008 "idle timeout") when no data
	// message arrives for this long. Pings and pongs do not count as
	// activity. The deadline is moved lazily, at most once per quarter of
	// IdleTimeout, so that a busy session pays no timer update per
	// message: an idle session is closed between IdleTimeout and 1.25 x
	// IdleTimeout after the server began waiting for its next message.
	// Zero disables it.
	IdleTimeout time.Duration

	// MaxLifetime closes a session with 1001 once it has been open this
	// long, making clients reconnect (and re-authenticate). Zero disables it.
	MaxLifetime time.Duration

	// Lifecycle hooks.

	// OnOpen, if set, runs after the handshake and before the first message
	// is read. Returning an error closes the session with the code
	// [CloseFrame] assigns to it.
	OnOpen func(s *Session) error

	// OnClose, if set, runs once when a session has ended, with the error
	// that ended it (nil for a clean close initiated by the peer).
	OnClose func(s *Session, err error)

	// Topics and the cluster.

	// MaxTopicsPerSession caps the topics one session may be joined to
	// ([Session.Join] returns ErrTooManyTopics beyond it), bounding what
	// one session costs in every topic table. Zero means 16; negative
	// makes New fail.
	MaxTopicsPerSession int

	// Backplane joins this Endpoint to the other nodes of a cluster:
	// [Hub.Publish] reaches the topic's subscribers on every node,
	// [Hub.CloseSubject] and [Hub.CloseSession] close on every node,
	// MaxConnsPerSubject counts the subject's sessions on every node, and
	// [Hub.Online] reports them; see [Backplane] for what each side
	// guarantees. New calls its Start, Shutdown its Stop. Every node
	// delivers to its own sessions at once, never through the broker.
	// When the broker is unreachable each node goes on alone, except
	// that a handshake whose subject the cluster cannot count under
	// MaxConnsPerSubject is refused (503 with Retry-After: the cap fails
	// closed). Zero (nil) is a single node: everything is local.
	Backplane Backplane

	// Observability: metrics, logs and what the logs may contain.

	// Observer, if set, is told about every handshake, session, message,
	// limit hit, validation failure and panic, to feed metrics, traces or
	// audit logs; see [Observation]. It is called synchronously on the
	// goroutine where the event happens (a handshake, a session's read
	// loop, a broadcast), from many goroutines at once, and must return
	// quickly without blocking: count, or hand off to a buffered channel,
	// never do I/O. The Observation's Session may be kept. A method value
	// (Observer: metrics.Observe) is the usual adapter. Zero observes
	// nothing and costs nothing; [Endpoint.Stats] counts either way.
	Observer func(Observation)

	// Logger receives wssafe's logs. Zero means slog.Default().
	Logger *slog.Logger

	// FingerprintKey keys the fingerprints of redacted values in logs.
	// Zero means a random key per Endpoint: fingerprints then correlate
	// within one process only. Set it (32 random bytes, kept secret) to
	// correlate across processes.
	FingerprintKey []byte

	// SecurityLogInterval is the minimum interval between two security
	// log lines (Warn and Error, before or after the upgrade) with the
	// same event from the same client address; the lines in between are
	// counted and the count is logged with the next one as "suppressed".
	// Besides, each event gets at most 10 lines per second from all
	// sources together, and all events together at most 100, except that
	// an event with no line in the past second always gets its next one,
	// so that a flood of one event never hides another. Suppressed lines
	// are still counted in Stats (and LogsSuppressed) and told to the
	// Observer. Zero means 1 s; negative logs every line, letting a
	// hostile client write to the log as fast as it can misbehave.
	SecurityLogInterval time.Duration
}

// config is Options with every default resolved; it never changes after New.
type config struct {
	Options
	accept     [3]bool // indexed by MessageType
	trusted    []netip.Prefix
	strictMode bool
	auth       *authenticator // nil when Options.Auth is nil
	guardConfig
	clock      clock          // every timer, limiter and logged duration reads it; see clock.go
	maxSources int            // the bound on per-address limiter state (handshakes, logs)
	writeTicks *quarterTicker // nil when WriteTimeout is negative; see deadline.go
	idleTicks  *quarterTicker // nil when IdleTimeout is zero; see deadline.go
	limited    bool           // a message or byte rate is set
	// direct is set when data frames are written by wssafe on the hijacked
	// connection (see wire.go), not through coder/websocket's bufio.Writer,
	// which then carries only control frames and shrinks to
	// controlWriteBuffer bytes (see shrinkWriter in accept.go).
	direct bool
	// readPool lends connections their read buffers, ReadBufferSize
	// bytes each (see sockReader).
	readPool *readPool
}

func (o *Options) resolve(h hooks) (*config, error) {
	c := &config{clock: h.clock, maxSources: h.maxSources}
	if o != nil {
		c.Options = *o
	}
	if c.clock == nil {
		c.clock = newRealClock()
	}
	if err := c.resolveOrigins(); err != nil {
		return nil, err
	}
	if c.ReadLimit < 0 {
		return nil, errors.New("wssafe: ReadLimit must not be negative (zero means 32 KiB)")
	}
	setDefault(&c.ReadLimit, DefaultReadLimit)
	if err := c.resolveReadBuffer(); err != nil {
		return nil, err
	}
	setDefault(&c.MessageTimeout, DefaultMessageTimeout)
	setDefault(&c.WriteTimeout, DefaultWriteTimeout)
	setDefault(&c.PingInterval, DefaultPingInterval)
	setDefault(&c.PongTimeout, DefaultPongTimeout)
	c.JSONLimits = c.JSONLimits.resolve()
	if err := c.resolveAccept(); err != nil {
		return nil, err
	}
	if err := c.resolveTrusted(); err != nil {
		return nil, err
	}
	if err := c.resolveGuards(); err != nil {
		return nil, err
	}
	if err := c.needSubject(); err != nil {
		return nil, err
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.warnInsecure()
	if len(c.FingerprintKey) == 0 {
		c.FingerprintKey = make([]byte, 32)
		rand.Read(c.FingerprintKey)
	}
	c.writeTicks = newQuarterTicker(c.WriteTimeout, c.clock)
	c.idleTicks = newQuarterTicker(c.IdleTimeout, c.clock)
	c.limited = c.limitsMessages()
	if err := c.resolveTopics(); err != nil {
		return nil, err
	}
	c.direct = h.writes == writesDirect || h.writes == writesAuto && coderDirect()
	if err := c.resolveCompression(); err != nil {
		return nil, err
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

// The bounds of ReadBufferSize: below 256 bytes a read brings in hardly
// more than a frame header; above 1 MiB the buffer costs each idle
// connection more than a full send queue does by default.
const (
	minReadBuffer = 256
	maxReadBuffer = 1 << 20
)

func (c *config) resolveReadBuffer() error {
	switch n := c.ReadBufferSize; {
	case n == 0:
		c.ReadBufferSize = DefaultReadBufferSize
	case n < 0:
		return fmt.Errorf("wssafe: ReadBufferSize must not be negative; leave it zero for %d bytes, or write a size from %d to %d", DefaultReadBufferSize, minReadBuffer, maxReadBuffer)
	case n < minReadBuffer:
		return fmt.Errorf("wssafe: ReadBufferSize %d is below %d bytes, where a read brings in hardly more than a frame header; write ReadBufferSize: %d or more, or leave it zero for %d", n, minReadBuffer, minReadBuffer, DefaultReadBufferSize)
	case n > maxReadBuffer:
		return fmt.Errorf("wssafe: ReadBufferSize %d is above %d bytes (1 MiB), memory that every open connection keeps; write ReadBufferSize: %d or less, or leave it zero for %d", n, maxReadBuffer, maxReadBuffer, DefaultReadBufferSize)
	}
	c.readPool = newReadPool(c.ReadBufferSize)
	return nil
}

// needSubject refuses the per-subject limits on an endpoint that does not
// authenticate: every session's subject is "", so they would never apply.
func (c *config) needSubject() error {
	if c.Auth != nil {
		return nil
	}
	if c.MaxConnsPerSubject > 0 {
		return errors.New("wssafe: MaxConnsPerSubject needs Auth: without authentication sessions have no subject and the cap never applies; set Auth, or cap by address with MaxConnsPerIP")
	}
	if c.SubjectMessageRate != (Rate{}) {
		return errors.New("wssafe: SubjectMessageRate needs Auth: without authentication sessions have no subject and the limit never applies; set Auth, or limit each session with MessageRate")
	}
	return nil
}

// warnInsecure logs, once at New, the Insecure options that widen what a
// peer may do.
func (c *config) warnInsecure() {
	if c.InsecureNoPingLimit {
		logEvent(context.Background(), c.Logger, slog.LevelWarn, EventInsecureConfig,
			"wssafe: ping limit disabled; a peer can make the server write pongs without end")
	}
	if c.InsecureTrustAllProxies && trustsEveryone(c.trusted) != "" {
		logEvent(context.Background(), c.Logger, slog.LevelWarn, EventInsecureConfig,
			"wssafe: every peer may be trusted as a proxy; a client that reaches the listener directly can choose its own address")
	}
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
	stopAuth   sync.Once // Shutdown stops the JWK Set's refresher once
	hub        *Hub
	done       chan struct{} // closed when the last session ends after shutdown began
	stats      endpointStats
	handshakes *sourceLimiter // per-address handshake buckets; nil when HandshakeRate is off
	logs       *logLimiter    // nil when SecurityLogInterval is negative

	node      *Node         // this node's side of Options.Backplane; nil without one (backplane.go)
	bpStop    sync.Once     // the first stopBackplane runs Backplane.Stop
	bpStopped chan struct{} // closed once it has returned
}

// New returns an Endpoint that serves h with opts. A nil opts is the secure
// default. New returns an error, and no Endpoint, when opts is unsafe or
// inconsistent; the error says what to change.
func New(h Handler, opts *Options) (*Endpoint, error) {
	return newEndpoint(h, opts, hooks{})
}

// newEndpoint is New with the test doubles in k (see export_test.go).
func newEndpoint(h Handler, opts *Options, k hooks) (*Endpoint, error) {
	if h == nil {
		return nil, errors.New("wssafe: New needs a Handler")
	}
	cfg, err := opts.resolve(k)
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
	// The library's own per-message steps (limits, timing, recovery,
	// refresh) are direct calls around h: see dispatch in chain.go.
	e.handler = h
	e.accept = websocket.AcceptOptions{
		Subprotocols:       cfg.Subprotocols,
		OriginPatterns:     cfg.OriginPatterns,
		InsecureSkipVerify: cfg.InsecureSkipOriginCheck,
	}
	cfg.acceptCompression(&e.accept)
	if cfg.InsecureSkipOriginCheck {
		logEvent(context.Background(), e.log, slog.LevelWarn, EventInsecureConfig,
			"wssafe: origin check disabled; any web page can open sockets to this endpoint")
	}
	if err := e.startBackplane(); err != nil {
		cfg.auth.shutdown(context.Background()) // the JWK Set's refresher, if any
		return nil, err
	}
	return e, nil
}

// hooks are what tests can build an endpoint with (see newEndpoint and
// export_test.go); New uses the zero hooks.
type hooks struct {
	clock      clock // nil: the real clock
	maxSources int   // the bound on per-address limiter state; 0: defaultMaxSources
	writes     writeMode
}

// writeMode chooses who writes data frames: by the coder/websocket
// version (New), or forced either way by tests.
type writeMode uint8

const (
	writesAuto   writeMode = iota // wssafe if coderDirect, else coder/websocket
	writesDirect                  // wssafe: the tests' default
	writesCoder                   // coder/websocket's Conn.Write
)
