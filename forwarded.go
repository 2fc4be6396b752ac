package wssafe

import (
	"log/slog"
	"net/http"
	"net/netip"
	"time"
)

// EventUntrustedForwarded is logged (at Info) when a handshake carries a
// forwarding header (X-Forwarded-For, Forwarded, X-Forwarded-Proto) from a
// peer that is not in [Options.TrustedProxies]: the header is ignored, so
// behind a proxy missing from that list every client has the proxy's
// address and shares its caps and rates. At most one line per peer per
// minute (or per SecurityLogInterval, if longer), naming the header.
const EventUntrustedForwarded = "untrusted_forwarded"

// untrustedForwardedInterval is the least interval between two
// untrusted_forwarded lines about one peer: a misconfigured proxy sends the
// header with every request, and the operator needs to be told, not
// flooded.
const untrustedForwardedInterval = time.Minute

// forwardingHeaders are the headers a proxy writes, in canonical form (the
// form net/http stores received headers in).
var forwardingHeaders = [...]string{"X-Forwarded-For", "Forwarded", "X-Forwarded-Proto"}

// maxForwardedValueLog bounds the bytes of the header's value in the line.
const maxForwardedValueLog = 64

// noteUntrustedForwarding logs, rate-limited, that r carries a forwarding
// header its peer is not trusted to write. Without such a header it costs
// three map lookups; the peer's address is parsed only when one is there.
func (e *Endpoint) noteUntrustedForwarding(r *http.Request, ip netip.Addr) {
	for _, name := range forwardingHeaders {
		v, ok := r.Header[name]
		if !ok {
			continue
		}
		if e.cfg.trustedPeer(r) || !e.log.Enabled(r.Context(), slog.LevelInfo) {
			return
		}
		value := ""
		if len(v) > 0 {
			value = truncate(v[0], maxForwardedValueLog)
		}
		attrs := []slog.Attr{slog.String("header", name), slog.String("value", value),
			slog.String("remote", r.RemoteAddr), slog.String("client", ip.String())}
		e.writeLimited(r.Context(), e.log, slog.LevelInfo, ip, EventUntrustedForwarded,
			max(e.logs.every(), untrustedForwardedInterval),
			"wssafe: forwarding header from a peer not in TrustedProxies ignored; list the proxy there if it is one",
			attrs)
		return
	}
}
