package wssafe

// Compression: permessage-deflate (RFC 7692), negotiated by
// coder/websocket at the handshake, read (inflated and limited) by it, and
// written by wssafe on the direct path.

import (
	"compress/flate"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/coder/websocket"
)

// The compression defaults (see Options.Compression).
const (
	DefaultCompressionThreshold = 512
	DefaultMaxInflationRatio    = 100
	// InflationRatioFloor is the inflated size of a message below which
	// MaxInflationRatio does not apply.
	InflationRatioFloor = 64 << 10
)

// resolveCompression checks and defaults the compression options.
func (c *config) resolveCompression() error {
	if c.CompressionThreshold < 0 {
		return errors.New("wssafe: CompressionThreshold must not be negative (zero means 512 bytes)")
	}
	if c.MaxInflationRatio < 0 {
		return errors.New("wssafe: MaxInflationRatio must not be negative (zero means 100)")
	}
	if !c.Compression {
		if c.CompressionThreshold != 0 || c.MaxInflationRatio != 0 || c.InsecureCompressionContextTakeover {
			return errors.New("wssafe: CompressionThreshold, MaxInflationRatio and InsecureCompressionContextTakeover need Compression: set Compression: true, or leave them zero")
		}
		return nil
	}
	setDefault(&c.CompressionThreshold, DefaultCompressionThreshold)
	setDefault(&c.MaxInflationRatio, DefaultMaxInflationRatio)
	if c.InsecureCompressionContextTakeover {
		logEvent(context.Background(), c.Logger, slog.LevelWarn, EventInsecureConfig,
			"wssafe: compression context takeover enabled; attacker-chosen text compressed with a secret in one session reveals the secret by its size (CRIME)")
	}
	return nil
}

// acceptCompression sets coder/websocket's negotiation from the options.
func (c *config) acceptCompression(o *websocket.AcceptOptions) {
	switch {
	case !c.Compression:
		o.CompressionMode = websocket.CompressionDisabled
	case c.InsecureCompressionContextTakeover:
		o.CompressionMode = websocket.CompressionContextTakeover
	default:
		o.CompressionMode = websocket.CompressionNoContextTakeover
	}
	o.CompressionThreshold = c.CompressionThreshold
}

// deflateParams are what a session negotiated, read from the handshake
// response coder/websocket wrote: on, and whether each side compresses
// every message on its own. wssafe writes with a window of 32 KiB, the
// only server_max_window_bits coder/websocket accepts.
type deflateParams struct {
	on              bool
	serverNoContext bool // the server's messages share no history: one compressed frame fits every such session
	clientNoContext bool // the client's messages share no history: inflating holds no window between messages
}

// negotiatedDeflate parses the Sec-WebSocket-Extensions response header
// coder/websocket set (it writes at most one permessage-deflate entry,
// with only the no_context_takeover parameters).
func negotiatedDeflate(h http.Header) deflateParams {
	v := h.Get("Sec-WebSocket-Extensions")
	if v == "" {
		return deflateParams{}
	}
	parts := strings.Split(v, ";")
	if strings.TrimSpace(parts[0]) != "permessage-deflate" {
		return deflateParams{}
	}
	d := deflateParams{on: true}
	for _, p := range parts[1:] {
		switch strings.TrimSpace(p) {
		case "server_no_context_takeover":
			d.serverNoContext = true
		case "client_no_context_takeover":
			d.clientNoContext = true
		}
	}
	return d
}

// Compressed reports whether the session negotiated permessage-deflate
// (see Options.Compression): its peer may send compressed messages, and
// messages of CompressionThreshold bytes or more are sent to it
// compressed, unless compressing would not make them smaller (without
// context takeover those go out plain), or they are written with
// [Session.WriteUncompressed] or [Session.SendUncompressed].
func (s *Session) Compressed() bool { return s.dc != nil && s.dc.deflate.on }

// inflateChunk bounds one read of a message on a compressed session, so
// that the inflation ratio is checked at least every inflateChunk
// inflated bytes: a bomb is cut off at most this far past its limit.
const inflateChunk = 16 << 10

// inflateGuard reads one message of a compressed session from
// coder/websocket, which inflates it and applies ReadLimit to the inflated
// bytes. The guard adds what coder does not check:
//
//   - MaxInflationRatio: past InflationRatioFloor inflated bytes, after
//     every read of at most inflateChunk bytes, the inflated size is
//     compared with the compressed bytes read for the message (see
//     compressed): a bomb is cut off within inflateChunk bytes of its
//     limit, the rest never inflated.
//   - Data after the final deflate block: coder's inflater ends the
//     message there and leaves the rest of the frame unread, for its next
//     frame header. The guard sees, at the message's end, whether coder
//     stopped before the message's end in the frame scan (see cutShort).
//     Trailing bytes that coder's inflater had already taken into its
//     4 KiB read-ahead are beyond any count wssafe can see: they are
//     carried into the session's next compressed message (SECURITY.md).
//   - A transport failure mid-message (a timeout, EOF, a reset) keeps its
//     own meaning: coder's inflater reads still-masked bytes of a cut
//     frame, or is told the stream ended cleanly, and would call either
//     invalid data. Once a read from the socket has failed while the
//     message's final frame had not arrived, the guard returns that
//     failure (ErrMessageTimeout's 1008, or the 1006 of a vanished peer).
//
// Uncompressed messages on such a session pass through it too: their
// ratio is at most 1. It lives in the deadlineConn, so a message costs no
// allocation; only the serve goroutine uses it.
type inflateGuard struct {
	c     *deadlineConn
	r     io.Reader
	ratio int64  // MaxInflationRatio; 0: not checked (ReadLimit is at most the floor)
	base  uint64 // the scan's data count when the message began, less what coder had buffered
	msg   uint64 // the message's number in the scan's count
	n     int64  // bytes inflated so far
}

// guardInflation returns r, the reader of a message coder/websocket has
// just begun, guarded if the session negotiated compression; readLimit is
// the limit in force, ratio MaxInflationRatio.
func (c *deadlineConn) guardInflation(r io.Reader, readLimit int64, ratio int) io.Reader {
	if !c.deflate.on {
		return r
	}
	c.msgsRead++
	g := &c.inflate
	*g = inflateGuard{c: c, r: r, msg: c.msgsRead}
	if readLimit > InflationRatioFloor {
		g.ratio = int64(ratio)
	}
	// What coder has buffered and not consumed may hold this message's
	// first payload bytes, which the scan has counted already: counting
	// them as this message's errs on the side of more compressed bytes.
	g.base = c.scan.data - min(c.scan.data, uint64(c.br.Buffered()))
	return g
}

// compressed is the count of compressed bytes the message has used so
// far: the payload bytes of data frames that reached coder/websocket's
// buffered reader since the message began. It is never less than what
// the inflater consumed, and at most about 4 KiB (coder's inflater reads
// ahead through a 4 KiB buffer) plus twice coder's read buffer (128
// bytes on a plain socket, ReadBufferSize otherwise) more: the ratio is
// never overstated, so a real message is never refused for bytes that
// were not counted, and a bomb is understated by at most that slack.
func (g *inflateGuard) compressed() int64 { return int64(g.c.scan.data - g.base) }

func (g *inflateGuard) Read(p []byte) (int, error) {
	if len(p) > inflateChunk {
		p = p[:inflateChunk]
	}
	n, err := g.r.Read(p)
	if e := g.c.readErr; e != nil && g.c.scan.endMsg < g.msg {
		return 0, &transportError{e}
	}
	g.n += int64(n)
	switch {
	case err == nil:
		if g.ratio > 0 && g.n > InflationRatioFloor && g.n > g.ratio*g.compressed() {
			return n, &inflationError{inflated: g.n, compressed: g.compressed(), ratio: g.ratio}
		}
	case err == io.EOF:
		if g.c.cutShort(g.msg) {
			return n, errDataAfterFinal
		}
	}
	return n, err
}

// cutShort reports whether message msg, which coder/websocket has just
// ended, goes on past where coder stopped reading: its inflater met a
// final deflate block before the message's end. Coder has consumed what
// the scan has seen less what its reader still buffers; the scan records
// where each message ends (msgEnds). What coder's inflater had already
// taken into its 4 KiB buffer past the final block is not seen here: it
// is consumed by coder's next inflation (see inflateGuard).
func (c *deadlineConn) cutShort(msg uint64) bool {
	f := &c.scan
	if f.endMsg < msg {
		return true // its final frame has not even arrived
	}
	end, ok := f.ends.take(msg)
	if !ok {
		return true // unreachable (see msgEnds): the end is unknown, so refuse
	}
	consumed := f.off - uint64(c.br.Buffered())
	if consumed != end {
		return true
	}
	if f.ends.n == 0 && f.ends.overflow {
		c.refillEnds(msg, consumed)
	}
	return false
}

// endRing is the number of message ends the scan keeps ahead of the
// inflate guard: messages that arrived whole and wait in coder's reader.
// A plain socket's reader buffers 128 bytes, so a fill holds at most 21
// messages; a wrapped connection's holds ReadBufferSize bytes.
const endRing = 16

// msgEnds are where the messages the scan has passed and the inflate
// guard has not yet checked end, oldest first: consecutive messages from
// the next one the guard checks. When the ring is full the scan records no
// more ends (overflow) and, when the guard has checked the last one it
// kept, they are found again by scanning what coder's reader buffers from
// that message's end, a frame boundary that coder and the scan agree on
// (refillEnds): each byte is scanned again at most once, and the ends are
// never wrong. Only the serve goroutine touches it.
type msgEnds struct {
	msg      [endRing]uint64 // message numbers, as the scan counts them
	at       [endRing]uint64 // the offsets where they end
	head, n  int
	overflow bool // ends past the last one kept were not recorded
}

func (e *msgEnds) push(msg, at uint64) {
	if e.n == endRing {
		e.overflow = true
		return
	}
	i := (e.head + e.n) % endRing
	e.msg[i], e.at[i] = msg, at
	e.n++
}

// take drops the ends of messages before msg (a final continuation frame
// with no message open counts as the end of the one before it) and removes
// and returns msg's, if kept.
func (e *msgEnds) take(msg uint64) (uint64, bool) {
	for e.n > 0 && e.msg[e.head] <= msg {
		i := e.head
		e.head, e.n = (e.head+1)%endRing, e.n-1
		if e.msg[i] == msg {
			return e.at[i], true
		}
	}
	return 0, false
}

// refillEnds records the ends of the messages after msg in what coder's
// reader buffers, which begins at off, msg's end: a frame boundary. It
// scans in steps and stops once the ring is full, so that the rest is
// scanned only when the guard gets there.
func (c *deadlineConn) refillEnds(msg, off uint64) {
	e := c.scan.ends
	e.overflow = false
	b, _ := c.br.Peek(c.br.Buffered())
	f := frameScan{off: off, msgs: msg, endMsg: msg, ends: e}
	for len(b) > 0 {
		if e.n == endRing {
			e.overflow = true
			return
		}
		k := min(len(b), 64)
		f.feed(b[:k])
		b = b[k:]
	}
}

// errDataAfterFinal is ErrInvalidCompressed for a deflate stream that
// ended (a final block) before its message did.
var errDataAfterFinal = fmt.Errorf("%w: data after the final deflate block", ErrInvalidCompressed)

// A transportError is a failed read from the socket, met while inflating
// a message whose final frame had not arrived: it means what the failure
// means (a timeout, a vanished peer), never invalid data, and never a
// clean end (io.EOF is wrapped).
type transportError struct{ err error }

func (e *transportError) Error() string {
	return "wssafe: connection failed mid-message: " + e.err.Error()
}
func (e *transportError) Unwrap() error { return e.err }

// An inflationError is ErrMessageTooBig for a message cut off by
// MaxInflationRatio.
type inflationError struct {
	inflated, compressed, ratio int64
}

func (e *inflationError) Error() string {
	return fmt.Sprintf("wssafe: message too big: inflated %d bytes from at most %d (over %d:1)", e.inflated, e.compressed, e.ratio)
}

func (e *inflationError) Unwrap() error { return ErrMessageTooBig }

// isInflateError reports whether err is compress/flate's verdict on
// corrupt input (bad codes, a reserved block type, a distance too far
// back), which coder/websocket passes through as a read error.
func isInflateError(err error) bool {
	var corrupt flate.CorruptInputError
	var internal flate.InternalError
	return errors.As(err, &corrupt) || errors.As(err, &internal)
}
