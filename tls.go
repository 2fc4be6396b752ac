package wssafe

import (
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
)

// EventTLSRequired is logged (at Warn) when [Options.RequireTLS] refuses a
// handshake that did not arrive over TLS.
const EventTLSRequired = "tls_required"

// requireTLS refuses, with 403, a handshake that did not come over TLS when
// RequireTLS is set, and reports whether the handshake may go on.
//
// 403 rather than 426 Upgrade Required: a 426 must name, in an Upgrade
// header, a protocol the client can switch to on this connection, and
// wss:// is not that; it is a new connection to another scheme.
func (e *Endpoint) requireTLS(w http.ResponseWriter, r *http.Request, ip netip.Addr) bool {
	if !e.cfg.RequireTLS || e.cfg.overTLS(r) {
		return true
	}
	// Counted in Stats.Refused and rate-limited like every refusal.
	e.handshakeEvent(r, slog.LevelWarn, Observation{Kind: HandshakeRefused, Reason: EventTLSRequired, ClientIP: ip},
		EventTLSRequired, "wssafe: handshake without TLS refused")
	closeAfterReply(w)
	http.Error(w, "TLS required: connect with wss://", http.StatusForbidden)
	return false
}

// overTLS reports whether the handshake reached the endpoint over TLS:
// directly, or through a trusted proxy that says so. RequireTLS and the
// origin's scheme check (see config.originAllowed) both use it.
func (c *config) overTLS(r *http.Request) bool {
	return r.TLS != nil || (c.trustedPeer(r) && forwardedHTTPS(r))
}

// forwardedHTTPS reports whether the proxy that sent r says the client
// connected over TLS. Only the last element of each header counts: it is
// the one the nearest proxy, the trusted one, added; earlier ones came from
// further away and may be the client's own invention. Forwarded (RFC 7239)
// wins over X-Forwarded-Proto when both are present.
func forwardedHTTPS(r *http.Request) bool {
	if fwd := r.Header.Values("Forwarded"); len(fwd) > 0 {
		return secureProto(forwardedProto(lastElement(fwd)))
	}
	return secureProto(lastElement(r.Header.Values("X-Forwarded-Proto")))
}

// lastElement returns the last comma-separated element of a header's values.
func lastElement(values []string) string {
	if len(values) == 0 {
		return ""
	}
	v := values[len(values)-1]
	return strings.TrimSpace(v[strings.LastIndexByte(v, ',')+1:])
}

// forwardedProto returns the proto parameter of one Forwarded element.
func forwardedProto(elem string) string {
	for _, pair := range strings.Split(elem, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if ok && strings.EqualFold(k, "proto") {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

func secureProto(p string) bool {
	return strings.EqualFold(p, "https") || strings.EqualFold(p, "wss")
}
