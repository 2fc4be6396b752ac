package wssafe

// The error vocabulary: sentinels, CloseError, MessageError, and the table
// that maps each to its close code (CloseFrame).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/coder/websocket"
)

// StatusCode is a WebSocket close status code (RFC 6455 section 7.4). It is
// the same type as github.com/coder/websocket's, so values pass between the
// two packages unchanged.
type StatusCode = websocket.StatusCode

// Close codes that wssafe sends. The 1xxx codes are RFC 6455's; the 3xxx codes
// are registered with IANA for libraries and frameworks.
const (
	StatusNormalClosure   StatusCode = websocket.StatusNormalClosure   // 1000
	StatusGoingAway       StatusCode = websocket.StatusGoingAway       // 1001: server shutdown
	StatusProtocolError   StatusCode = websocket.StatusProtocolError   // 1002
	StatusUnsupportedData StatusCode = websocket.StatusUnsupportedData // 1003: message type not accepted
	StatusInvalidPayload  StatusCode = websocket.StatusInvalidFramePayloadData
	StatusPolicyViolation StatusCode = websocket.StatusPolicyViolation // 1008: rates, timeouts, floods
	StatusMessageTooBig   StatusCode = websocket.StatusMessageTooBig   // 1009
	StatusInternalError   StatusCode = websocket.StatusInternalError   // 1011: panics, unexpected errors
	StatusTryAgainLater   StatusCode = websocket.StatusTryAgainLater   // 1013

	StatusUnauthorized StatusCode = 3000 // IANA "Unauthorized": invalid or expired token
	StatusForbidden    StatusCode = 3003 // IANA "Forbidden": the application refused the identity
	StatusTimeout      StatusCode = 3008 // IANA "Timeout": no token in time, no pong in time
)

// Sentinel errors. Each one that ends a session maps to a close code and a
// fixed reason through [CloseFrame]; use errors.Is to test for them.
var (
	// ErrMessageTooBig: a message from the peer exceeded the read limit.
	// Closes 1009. The session's cause wraps it with the limit in force.
	ErrMessageTooBig = errors.New("wssafe: message too big")
	// ErrInvalidUTF8: a text message was not valid UTF-8. Closes 1007.
	ErrInvalidUTF8 = errors.New("wssafe: text message is not valid UTF-8")
	// ErrInvalidCompressed: a compressed message (permessage-deflate) did
	// not inflate: corrupt deflate data, a reserved block type, or a final
	// block followed by more of the message than coder/websocket's inflater
	// had read ahead (further frames, or more than about 4 KiB of the
	// frame). Fewer bytes after a final block are not seen and are inflated
	// at the start of the session's next compressed message (SECURITY.md).
	// Closes 1007 "invalid compressed data".
	ErrInvalidCompressed = errors.New("wssafe: invalid compressed data")
	// ErrUnsupportedType: a message of a type the endpoint does not accept. Closes 1003.
	ErrUnsupportedType = errors.New("wssafe: message type not accepted")
	// ErrMessageTimeout: a started message did not complete in time. Closes 1008.
	ErrMessageTimeout = errors.New("wssafe: message not completed in time")
	// ErrPingFlood: the peer sent pings, or unsolicited pongs, faster than
	// the ping rate. Closes 1008 "ping rate exceeded" (or "pong rate
	// exceeded").
	ErrPingFlood = errors.New("wssafe: ping rate exceeded")
	// ErrRateLimited: the peer sent messages faster than allowed. Closes 1008.
	ErrRateLimited = errors.New("wssafe: message rate exceeded")
	// ErrTooManyInvalid: too many invalid messages in a window. Closes 1008.
	ErrTooManyInvalid = errors.New("wssafe: too many invalid messages")
	// ErrSlowConsumer: the peer did not read its messages in time. Closes 1008.
	ErrSlowConsumer = errors.New("wssafe: slow consumer")
	// ErrTooManyConnections: the subject already has as many sessions as
	// Options.MaxConnsPerSubject allows. Before the upgrade it is answered
	// with HTTP 429; once the session is open (first-message auth) it
	// closes 1008 "too many connections": a policy refusal that a client
	// should not retry in a loop, unlike 1013 "try again later".
	ErrTooManyConnections = errors.New("wssafe: too many connections")
	// ErrWriteTimeout: a write did not complete within the write timeout.
	// The peer is not reading, so the connection is dropped without a
	// close handshake.
	ErrWriteTimeout = errors.New("wssafe: write timed out")
	// ErrPongTimeout: no pong arrived within the pong timeout. Closes 3008.
	ErrPongTimeout = errors.New("wssafe: keepalive timed out")
	// ErrIdleTimeout: no message arrived within the idle timeout. Closes 3008.
	ErrIdleTimeout = errors.New("wssafe: idle timeout")
	// ErrMaxLifetime: the session reached its maximum lifetime. Closes 1001
	// so that clients reconnect as they would after a restart.
	ErrMaxLifetime = errors.New("wssafe: session lifetime reached")
	// ErrShutdown: the endpoint is shutting down. Closes 1001.
	ErrShutdown = errors.New("wssafe: endpoint shutting down")
	// ErrProtocol: the peer violated the WebSocket protocol. Closes 1002.
	ErrProtocol = errors.New("wssafe: protocol violation")
	// ErrPanic: the callback or a middleware panicked. Closes 1011.
	ErrPanic = errors.New("wssafe: handler panicked")
	// ErrSessionClosed is returned by writes on a session that has ended.
	ErrSessionClosed = errors.New("wssafe: session closed")
	// ErrSendTooLarge is returned by [Session.Send] for a message larger
	// than Options.SendQueueBytes: the server's own message, which no
	// queue of this endpoint can hold. The session goes on. It is not
	// [ErrMessageTooBig] (the peer's message over the read limit, 1009):
	// returned from a callback it is an unexpected error, logged as
	// "handler_error", and closes 1011 "internal error": nothing is the
	// peer's fault.
	ErrSendTooLarge = errors.New("wssafe: message larger than the send queue")

	// ErrInvalidToken: the token was missing, malformed, forged or lacked a
	// subject. Closes 3000 "invalid token".
	ErrInvalidToken = errors.New("wssafe: invalid token")
	// ErrTokenExpired: the token's exp has passed. Closes 3000 "token expired".
	ErrTokenExpired = errors.New("wssafe: token expired")
	// ErrForbidden: the application refused the verified identity. Closes 3003.
	ErrForbidden = errors.New("wssafe: forbidden")
	// ErrAuthTimeout: no token arrived within the auth timeout. Closes 3008.
	ErrAuthTimeout = errors.New("wssafe: no token within the auth timeout")
)

// tooBig is ErrMessageTooBig for a message over limit bytes.
func tooBig(limit int64) error {
	return fmt.Errorf("%w: over the read limit of %d bytes", ErrMessageTooBig, limit)
}

// errPongFlood is ErrPingFlood for unsolicited pongs, with its own close
// reason.
var errPongFlood = fmt.Errorf("wssafe: pong rate exceeded: %w", ErrPingFlood)

// maxCloseReason is the longest close reason a close frame holds (RFC 6455
// section 5.5: 125 bytes of payload, 2 of them the code).
const maxCloseReason = 123

// A CloseError ends the session with its code and reason. Return one from a
// callback to choose the close code yourself:
//
//	return &wssafe.CloseError{Code: 4001, Reason: "room closed"}
//
// Reason is sent to the peer: keep it short and fixed (at most 123 bytes),
// never an err.Error(), a token or a payload.
type CloseError struct {
	Code   StatusCode
	Reason string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("wssafe: close %d %q", int(e.Code), e.Reason)
}

// A MessageError reports a message the callback could not accept while the
// session stays usable: the client gets one JSON text frame
//
//	{"type":"error","code":"invalid_message","field":"email","message":"must be an email address"}
//
// and the session goes on. Code is a stable machine-readable string; Field
// names the offending field (may be empty); Message is human text. Neither
// may echo the client's input. Rule names the check that failed (e.g.
// "max_depth", "email.syntax"); it is logged, never sent. Err, if set, is
// unwrapped by errors.Is and errors.As; it is neither sent nor logged, since
// an error's text may quote the input.
//
// Repeated invalid messages count against the session's invalid-message
// budget (see [Options.InvalidMessages]); exhausting it closes 1008.
type MessageError struct {
	Code    string
	Field   string
	Message string
	Rule    string
	Err     error
}

func (e *MessageError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("wssafe: %s: field %q: %s", e.Code, e.Field, e.Message)
	}
	return fmt.Sprintf("wssafe: %s: %s", e.Code, e.Message)
}

func (e *MessageError) Unwrap() error { return e.Err }

// closeRule maps a sentinel to the frame that announces it.
type closeRule struct {
	err    error
	code   StatusCode
	reason string
}

// closeTable is the one place that decides close codes. Order matters only
// where one error matches several sentinels: errPongFlood also matches
// ErrPingFlood.
var closeTable = [...]closeRule{
	{ErrMessageTooBig, StatusMessageTooBig, "message too big"},
	{ErrInvalidUTF8, StatusInvalidPayload, "invalid utf-8"},
	{ErrInvalidCompressed, StatusInvalidPayload, "invalid compressed data"},
	{ErrUnsupportedType, StatusUnsupportedData, "unsupported message type"},
	{ErrMessageTimeout, StatusPolicyViolation, "message timeout"},
	{errPongFlood, StatusPolicyViolation, "pong rate exceeded"}, // before ErrPingFlood, which it wraps
	{ErrPingFlood, StatusPolicyViolation, "ping rate exceeded"},
	{ErrRateLimited, StatusPolicyViolation, "rate limit exceeded"},
	{ErrTooManyInvalid, StatusPolicyViolation, "too many invalid messages"},
	{ErrSlowConsumer, StatusPolicyViolation, "slow consumer"},
	{ErrTooManyConnections, StatusPolicyViolation, "too many connections"},
	{ErrUnavailable, StatusTryAgainLater, "try again later"},
	{ErrWriteTimeout, StatusPolicyViolation, "write timeout"},
	{ErrPongTimeout, StatusTimeout, "timeout"},
	{ErrIdleTimeout, StatusTimeout, "idle timeout"},
	{ErrMaxLifetime, StatusGoingAway, "session lifetime reached"},
	{ErrShutdown, StatusGoingAway, "going away"},
	{ErrProtocol, StatusProtocolError, "protocol error"},
	{ErrInvalidToken, StatusUnauthorized, "invalid token"},
	{ErrTokenExpired, StatusUnauthorized, "token expired"},
	{ErrForbidden, StatusForbidden, "forbidden"},
	{ErrAuthTimeout, StatusTimeout, "authentication timeout"},
	{ErrPanic, StatusInternalError, "internal error"},
}

// CloseFrame returns the close code and reason wssafe sends for err:
//   - nil: 1000 with an empty reason;
//   - a [*CloseError] anywhere in the chain: its code and reason, cut to
//     the 123 bytes a close frame holds;
//   - a wssafe sentinel (see the Err variables): its code and fixed reason;
//   - context.Canceled: 1000, the session was ended on purpose;
//   - anything else: 1011 "internal error". The error's text is never sent.
func CloseFrame(err error) (StatusCode, string) {
	if err == nil {
		return StatusNormalClosure, ""
	}
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce.Code, truncate(ce.Reason, maxCloseReason)
	}
	for _, r := range closeTable {
		if errors.Is(err, r.err) {
			return r.code, r.reason
		}
	}
	if errors.Is(err, context.Canceled) {
		return StatusNormalClosure, ""
	}
	return StatusInternalError, "internal error"
}

// CloseStatus returns the close code carried by err: a [*CloseError]'s, a
// close frame received from the peer (github.com/coder/websocket's
// CloseError), or the code [CloseFrame] assigns to a wssafe sentinel. It
// returns -1 when err carries no close code, like websocket.CloseStatus.
func CloseStatus(err error) StatusCode {
	if err == nil {
		return -1
	}
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	if code := websocket.CloseStatus(err); code != -1 {
		return code
	}
	for _, r := range closeTable {
		if errors.Is(err, r.err) {
			return r.code
		}
	}
	return -1
}

// IsExpectedClose reports whether err is an ordinary end of a session that
// deserves no more than a debug log: a normal or going-away close from
// either side, the peer disconnecting (EOF, or a TCP reset seen as
// ECONNRESET or EPIPE), a cancelled context, or a shutdown.
func IsExpectedClose(err error) bool {
	if err == nil {
		return true
	}
	switch CloseStatus(err) {
	case StatusNormalClosure, StatusGoingAway, websocket.StatusNoStatusRcvd:
		return true
	}
	return errors.Is(err, context.Canceled) ||
		errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) ||
		connLost(err)
}
