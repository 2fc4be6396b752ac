package wssafe

// The event vocabulary, the one path of a log line and of a security event,
// the session log handler, and Redacted.

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"time"
)

// Event names: the stable vocabulary of wssafe's log lines (their "event"
// attribute), of [Observation.Reason] and of the keys of [Stats]' maps.
// Alert on these, not on message text; a name never changes meaning.
// Warn and Error lines are security events (see [Options.SecurityLogInterval]).
const (
	// The endpoint and the session's lifetime.
	EventSessionOpen    = "session_open"    // Debug: a session was admitted
	EventSessionClose   = "session_close"   // Info (Debug for an expected close): with its code and duration
	EventShuttingDown   = "shutting_down"   // Info: Shutdown began; a handshake refused since then
	EventInsecureConfig = "insecure_config" // Warn, at New: an Insecure option that exposes the endpoint
	EventHandlerError   = "handler_error"   // Error: the callback returned an error that closes 1011
	EventPanic          = "panic"           // Error: the callback panicked; closes 1011

	// Handshake refusals, before the upgrade (see [Options.AllowIPs] and the
	// connection caps), and a forwarding header from an untrusted peer.
	EventIPDenied         = "ip_denied"
	EventOriginRefused    = "origin_refused"
	EventHandshakeRate    = "handshake_rate_exceeded"
	EventIPConnLimit      = "ip_conn_limit"
	EventSubjectConnLimit = "subject_conn_limit"
	EventAtCapacity       = "at_capacity"
	EventHandshakeFailed  = "handshake_failed"
	EventRequestBody      = "request_body" // Warn: an upgrade request carried a body; HTTP 400
	EventHostRefused      = "host_refused" // Warn: the Host is not in Options.AllowedHosts
	EventTLSRequired      = "tls_required" // Warn: Options.RequireTLS refused a handshake not over TLS; HTTP 403
	// EventClusterUnavailable: Warn, the Backplane could not count the
	// subject under MaxConnsPerSubject; HTTP 503, or close 1013 after a
	// first-message token.
	EventClusterUnavailable = "cluster_unavailable"

	// EventUntrustedForwarded is logged (at Info) when a handshake carries a
	// forwarding header (X-Forwarded-For, Forwarded, X-Forwarded-Proto) from a
	// peer that is not in [Options.TrustedProxies]: the header is ignored, so
	// behind a proxy missing from that list every client has the proxy's
	// address and shares its caps and rates. At most one line per peer per
	// minute (or per SecurityLogInterval, if longer), naming the header.
	EventUntrustedForwarded = "untrusted_forwarded"

	// Authentication.
	EventAuthenticated     = "authenticated"       // Info: a session was bound to a subject
	EventAuthFailed        = "auth_failed"         // Warn: missing, invalid or expired token
	EventAuthForbidden     = "auth_forbidden"      // Warn: AuthOptions.Authorize refused a subject
	EventAuthTimeout       = "auth_timeout"        // Warn: no first-message token in time
	EventTokenExpired      = "token_expired"       // Info: an open session's token expired
	EventTokenRefreshed    = "token_refreshed"     // Debug: in-band refresh accepted
	EventSubjectClosed     = "subject_closed"      // Info: Hub.CloseSubject ended sessions
	EventJWKSRefreshFailed = "jwks_refresh_failed" // Warn: fetching the JWK Set failed

	// Reading a message: each closes the session (Warn), except
	// EventInvalidMessage, which is answered within the invalid-message budget.
	EventMessageTooBig   = "message_too_big"  // 1009
	EventInvalidUTF8     = "invalid_utf8"     // 1007
	EventUnsupportedType = "unsupported_type" // 1003
	EventMessageTimeout  = "message_timeout"  // 1008
	EventIdleTimeout     = "idle_timeout"     // 3008
	EventProtocolError   = "protocol_error"   // 1002
	EventInvalidMessage  = "invalid_message"
	// EventInflationRatio: a compressed message inflated to more than
	// Options.MaxInflationRatio times its compressed size; 1009.
	EventInflationRatio = "inflation_ratio_exceeded"
	// EventInvalidCompressed: a compressed message that does not inflate
	// (corrupt deflate data, a reserved block type, more of the message
	// after the final block than coder/websocket read ahead); 1007.
	EventInvalidCompressed = "invalid_compressed_data"

	// Keepalive and writing.
	EventPingFlood    = "ping_flood"   // 1008: pings over Options.PingRate
	EventPongFlood    = "pong_flood"   // 1008: unsolicited pongs over Options.PingRate
	EventPongTimeout  = "pong_timeout" // 3008: no pong within Options.PongTimeout
	EventWriteTimeout = "write_timeout"

	// Per-message limits (1008).
	EventMessageRate  = "message_rate_exceeded"
	EventSubjectRate  = "subject_rate_exceeded"
	EventByteRate     = "byte_rate_exceeded"
	EventSlowConsumer = "slow_consumer"

	// The Backplane (see Node.SetUp and Node.Count).
	EventBackplaneDown    = "backplane_down"    // Warn, once per outage: this node serves its own sessions only
	EventBackplaneUp      = "backplane_up"      // Info, once per recovery
	EventBackplaneDropped = "backplane_dropped" // Warn, rate-limited: a publication not sent to the other nodes
	EventBackplaneRefused = "backplane_refused" // Warn, rate-limited: a forged, replayed or malformed envelope
)

// Redacted is a byte string that must never reach a log in the clear: a
// payload or a token. As a slog value it logs its length and a keyed
// fingerprint, so two log lines about the same bytes can be matched without
// revealing them.
type Redacted struct {
	b []byte
	f *fingerprinter
}

// LogValue implements slog.LogValuer.
func (r Redacted) LogValue() slog.Value {
	if r.f == nil || len(r.b) == 0 {
		return slog.GroupValue(slog.Int("len", len(r.b)))
	}
	return slog.GroupValue(slog.Int("len", len(r.b)), slog.String("fp", r.f.sum(r.b)))
}

// String hides the bytes from fmt verbs too.
func (r Redacted) String() string { return "[redacted]" }

// logEvent writes one line with a stable event attribute. It checks Enabled
// first so a disabled level costs no attribute building.
//
// In a session (ctx is the session's or derived from it), Warn and Error
// lines are security events and take the one path every security event
// takes, securityEvent: counted in Stats and told to the Observer once
// (eventObservation maps the event to its Observation), the line
// rate-limited per client source and event. Before the upgrade there is
// no session in the context: a handshake's security events go through
// refuse (a refusal) or handshakeEvent, never logEvent, which would
// neither count nor limit them. Lines without a session (configuration
// warnings at New, shutdown) are written as they come.
func logEvent(ctx context.Context, l *slog.Logger, level slog.Level, event, msg string, attrs ...slog.Attr) {
	if level >= slog.LevelWarn {
		if s := SessionFromContext(ctx); s != nil {
			s.ep.securityEvent(ctx, l, level, s.eventObservation(event), event, msg, attrs...)
			return
		}
	}
	if !l.Enabled(ctx, level) {
		return
	}
	l.LogAttrs(ctx, level, msg, append([]slog.Attr{slog.String("event", event)}, attrs...)...)
}

// securityEvent is the one path of a security event, before or after the
// upgrade: it counts o in Stats and tells the Observer exactly once (o.Kind
// zero: a diagnostic, neither counted nor observed), whatever the log level
// and whether the line is suppressed; then it writes the line, rate-limited
// per source (o.ClientIP) and event and within the per-event and global
// budgets (see logLimiter).
//
// An event without a Session that is not itself a HandshakeRefused (an auth
// failure, a panic in Authorize) refused a handshake: it is counted in
// Stats.Refused as well, under its event name, so Refused holds every
// refused handshake.
func (e *Endpoint) securityEvent(ctx context.Context, l *slog.Logger, level slog.Level, o Observation, event, msg string, attrs ...slog.Attr) {
	if o.Kind != 0 {
		if o.Kind == HandshakeRefused || o.Session == nil {
			o.Duration = e.sinceHandshake(ctx)
		}
		e.record(o)
		if o.Session == nil && o.Kind != HandshakeRefused {
			e.stats.refused.inc(event)
		}
	}
	e.writeSecurityLine(ctx, l, level, o.ClientIP, event, msg, attrs)
}

// handshakeEvent is securityEvent before the upgrade, through the
// endpoint's logger: the line names the peer ("remote") and the client
// address ("client"), which differ behind a trusted proxy.
func (e *Endpoint) handshakeEvent(r *http.Request, level slog.Level, o Observation, event, msg string, attrs ...slog.Attr) {
	if e.log.Enabled(r.Context(), level) {
		attrs = append(attrs, slog.String("remote", r.RemoteAddr), slog.String("client", o.ClientIP.String()))
	}
	e.securityEvent(r.Context(), e.log, level, o, event, msg, attrs...)
}

// writeSecurityLine writes a security event's line if its level is enabled
// and the log limiter lets it through.
func (e *Endpoint) writeSecurityLine(ctx context.Context, l *slog.Logger, level slog.Level, src netip.Addr, event, msg string, attrs []slog.Attr) {
	e.writeLimited(ctx, l, level, src, event, e.logs.every(), msg, attrs)
}

// writeLimited is writeSecurityLine with an interval of its own between
// two lines of the event from one source.
func (e *Endpoint) writeLimited(ctx context.Context, l *slog.Logger, level slog.Level, src netip.Addr, event string, every time.Duration, msg string, attrs []slog.Attr) {
	if !l.Enabled(ctx, level) {
		return
	}
	var ok bool
	if attrs, ok = e.logs.allowEvery(src, event, every, attrs); !ok {
		return
	}
	l.LogAttrs(ctx, level, msg, append([]slog.Attr{slog.String("event", event)}, attrs...)...)
}

// sessionHandler adds a session's ID and remote address to each record as
// it is logged. Logger.With would pre-format them into a cloned handler per
// session, a cost every idle session pays although few ever log.
type sessionHandler struct {
	slog.Handler
	id, remote string
}

func (h *sessionHandler) Handle(ctx context.Context, r slog.Record) error {
	r = r.Clone() // the caller's record must not see our attributes
	r.AddAttrs(slog.String("session", h.id), slog.String("remote", h.remote))
	return h.Handler.Handle(ctx, r)
}

// WithAttrs and WithGroup fall back to pre-formatting, so that the session
// attributes stay outside any group the caller opens.
func (h *sessionHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return h.fixed().WithAttrs(attrs)
}

func (h *sessionHandler) WithGroup(name string) slog.Handler { return h.fixed().WithGroup(name) }

func (h *sessionHandler) fixed() slog.Handler {
	return h.Handler.WithAttrs([]slog.Attr{slog.String("session", h.id), slog.String("remote", h.remote)})
}

// truncate bounds a client-chosen string (a Host, an Origin) in a log line.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
