package serve

import "time"

// Limits bound what one request may cost the examples' HTTP server, in
// time and size. Serve reads ServerLimits when it starts.
//
// None of them touches a live WebSocket session: when a handler hijacks
// the connection, net/http clears its read and write deadlines
// (conn.hijackLocked calls rwc.SetDeadline(time.Time{})), and the
// connection leaves the server's accounting, IdleTimeout included. From
// then on wssafe's own deadlines govern it (MessageTimeout, WriteTimeout,
// keepalive, IdleTimeout in wssafe.Options). Only the handshake itself,
// which ends with the 101 response, runs under these limits.
type Limits struct {
	// ReadHeaderTimeout bounds the request line and headers: a client
	// that never finishes them (slowloris) is cut.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds the whole request, headers and body, from its
	// first byte. Without it a body that trickles in a byte every few
	// seconds holds its socket for ever, before any handler or cap has
	// had a say: net/http also reads an unread body after the handler
	// returns (up to 256 KiB, to reuse the connection), and nothing else
	// bounds that read. 10 s is ample for the largest body these servers
	// take (a sign-in form of a few hundred bytes, or MaxBodyBytes on a
	// slow link) and short enough that a flood of slow bodies holds each
	// descriptor for 10 s at most.
	ReadTimeout time.Duration
	// WriteTimeout bounds an ordinary response. net/http starts it when
	// the headers have been read, so it covers reading the body too and
	// must be longer than ReadTimeout; 20 s leaves 10 s to send a page
	// to a client that reads slowly.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that sends no new request.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request headers: room for a token in a
	// header, little more.
	MaxHeaderBytes int
	// MaxBodyBytes bounds what a handler can read of a request body
	// (http.MaxBytesHandler); reading past it fails and the connection is
	// closed after the response. WebSocket handshakes have no body: wssafe
	// refuses one that announces a body with 400, unread.
	MaxBodyBytes int64
}

// ServerLimits are the limits Serve applies. Tests lower the timeouts
// before they start a server.
var ServerLimits = Limits{
	ReadHeaderTimeout: 5 * time.Second,
	ReadTimeout:       10 * time.Second,
	WriteTimeout:      20 * time.Second,
	IdleTimeout:       60 * time.Second,
	MaxHeaderBytes:    32 << 10,
	MaxBodyBytes:      64 << 10,
}
