package wssafe

import (
	"net/http"
	"strings"
	"time"
)

// refuseBody answers an upgrade request that carries a body. A WebSocket
// opening handshake is a GET without one (RFC 6455 section 4.1), and a body
// that trickles in would hold the socket for as long as its sender likes
// while no guard has looked at the request yet.
var refuseBody = refusal{http.StatusBadRequest, 0, EventRequestBody, "wssafe: upgrade request with a body refused"}

// hasBody reports whether r announces a body: a Content-Length other than
// zero (-1 is unknown) or any Transfer-Encoding, which net/http moves out
// of r.Header into r.TransferEncoding. It reads nothing.
func hasBody(r *http.Request) bool {
	return r.ContentLength != 0 || len(r.TransferEncoding) > 0
}

// closeAfterReply makes net/http close the connection as soon as the
// refusal about to be written to w has been sent, instead of reading what
// is left of the request body. Every HTTP error wssafe writes goes through
// it, before the status is written.
//
// Connection: close alone is not enough: after a handler returns, net/http
// still reads up to 256 KiB of an unread body (to keep the connection in
// sync), for as long as the client takes to trickle it, holding the socket
// and its descriptor. A read deadline of now makes that read fail at once,
// and net/http then closes the connection. Unread body bytes make the
// kernel answer the close with a reset, which is the sender's problem.
//
// Any Connection tokens already set (coder/websocket's "Upgrade" on a 426)
// are kept after "close", on a second field line, because net/http only
// honours a first value of exactly "close". On HTTP/2, net/http turns
// Connection: close into a graceful GOAWAY; WebSocket handshakes are
// HTTP/1.1, since coder/websocket does not implement RFC 8441. A
// ResponseWriter that cannot set deadlines (a wrapper without Unwrap)
// leaves the drain to http.Server.ReadTimeout.
func closeAfterReply(w http.ResponseWriter) {
	h := w.Header()
	others := h.Values("Connection")
	h.Set("Connection", "close")
	for _, v := range others {
		if !strings.EqualFold(strings.TrimSpace(v), "close") {
			h.Add("Connection", v)
		}
	}
	http.NewResponseController(w).SetReadDeadline(time.Now()) // a socket deadline: the real clock
}
