package wssafe

// The write path on the wire: data frames encoded by wssafe and written on
// the hijacked connection in one writev, serialised with coder/websocket's
// control frames, the close reasons it writes, and the version guard.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
)

// coder/websocket writes every frame through net/http's bufio.Writer
// (reset onto the deadlineConn in hijackCapture.Hijack) and flushes it at
// the end of each final frame. For a 16 KiB message that is two write
// syscalls (the header and the first 4 KiB from the buffer, then the
// rest), where one would do. So wssafe writes data frames itself: it
// encodes the header (a server frame is unmasked) and writes header and
// payload with one writev on the bare TCP connection, or gathered into one
// buffer and one Write on any other net.Conn (TLS), under wire.mu.
//
// coder/websocket goes on writing the control frames (pings, pongs, the
// close frame) through its buffer and deadlineConn.Write, under the same
// lock. That leans on two facts of its write path, which the tests check
// (wire_test.go) and coderTested vouches for:
//
//   - each control frame reaches the connection as exactly one Write,
//     header and payload together: writeFrame buffers both and flushes
//     once, and a control frame (at most 2 + 125 bytes) fits the buffer,
//     which must therefore hold at least 127 bytes;
//   - a close frame is recognisable by its first byte, 0x88 (FIN, opcode
//     8), and after it coder writes no data.
//
// When the build's coder/websocket version is not one the tests cover,
// data frames go through coder's Conn.Write as before (see coderDirect).
// Its close frames still get the fixed reasons: on that path
// deadlineConn.Write follows the frames of the stream it is handed
// (frameTrack), which assumes nothing of coder but RFC 6455's framing,
// and fixes a close frame it finds whole within one Write.

// coderModule is coder/websocket's module path.
const coderModule = "github.com/coder/websocket"

// coderTested are the coder/websocket versions whose write path the suite
// covers: the version in go.mod. Add a version only after running the
// whole suite, wire_test.go in particular, against it.
var coderTested = []string{"v1.8.15"}

// linkedCoder is the coder/websocket version to assume when the build
// information does not list the module: `go test` builds test binaries
// without dependency information. Set it at link time, e.g.
//
//	go test -ldflags=-X=github.com/wssafe/wssafe.linkedCoder=$(go list -m -f '{{.Version}}' github.com/coder/websocket)
//
// Empty (the default): without build information coder's Conn.Write is
// used.
var linkedCoder string

// coderDirect reports whether the coder/websocket linked into this binary
// is a version the tests cover, so that data frames may be written
// directly. A replaced module, another version, or no way to tell (no
// build information and no linkedCoder) all mean no.
var coderDirect = sync.OnceValue(func() bool {
	return slices.Contains(coderTested, coderVersion())
})

// coderVersion returns the linked coder/websocket version, or "" when it
// is replaced or cannot be told.
func coderVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if ok {
		for _, d := range bi.Deps {
			if d.Path == coderModule {
				if d.Replace != nil {
					return ""
				}
				return d.Version
			}
		}
	}
	return linkedCoder
}

// The frame bits wssafe writes and reads back.
const (
	frameFIN        = 0x80
	opClose         = 0x8
	maxFrameHeader  = 10  // a server frame's header: 2 bytes, 8 of extended length, no mask
	maxControlFrame = 127 // 2 bytes of header, 125 of payload
)

// putHeader writes at the start of b (at least maxFrameHeader long) the
// header of a final, unmasked frame of opcode op with n payload bytes, and
// returns its length. rsv holds the RSV bits: 0, or RSV1 (rsvDeflate) for
// a compressed message.
func putHeader(b []byte, rsv, op byte, n int) int {
	b[0] = frameFIN | rsv | op
	switch {
	case n <= 125:
		b[1] = byte(n)
		return 2
	case n <= 0xFFFF:
		b[1] = 126
		binary.BigEndian.PutUint16(b[2:], uint16(n))
		return 4
	default:
		b[1] = 127
		binary.BigEndian.PutUint64(b[2:], uint64(n))
		return 10
	}
}

// errMessageType refuses a message type other than text or binary, which
// would go out as a continuation or control frame.
var errMessageType = errors.New("wssafe: a message's type must be MessageText or MessageBinary")

func checkType(typ MessageType) error {
	if typ != MessageText && typ != MessageBinary {
		return errMessageType
	}
	return nil
}

// errBroken is what every write returns once a write has failed: the
// stream may stop mid-frame, so nothing may follow it, not even a close
// frame.
var errBroken = fmt.Errorf("wssafe: connection dropped after a failed write: %w", net.ErrClosed)

// wire is the write side of a deadlineConn: the lock that orders wssafe's
// data frames with coder/websocket's control frames, and what the direct
// path needs. Its fields are guarded by mu.
type wire struct {
	mu        sync.Mutex
	direct    bool                   // wssafe writes data frames itself, and watches coder's close frame
	tcp       *net.TCPConn           // the bare connection, for writev; nil: gather into one Write
	broken    bool                   // a write failed: the stream may be mid-frame
	closeSent bool                   // coder wrote a close frame: no data may follow
	own       atomic.Pointer[[]byte] // the close payload (code, reason) that wssafe itself asked for
	track     *frameTrack            // on coder's write path (not direct): where in its frames the stream is
	hdr       [maxFrameHeader]byte
	vec       [2][]byte   // a single message: its header and payload
	bufs      net.Buffers // the pieces being written; a field, so that WriteTo does not allocate
}

// writeDirect makes c's data writes direct (see wire).
func (c *deadlineConn) writeDirect() {
	c.wire.direct = true
	c.wire.tcp, _ = c.Conn.(*net.TCPConn)
}

// announceClose records the close frame wssafe is about to have coder
// send, so that its reason is not taken for one of coder's own.
func (c *deadlineConn) announceClose(code StatusCode, reason string) {
	p := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(reason)), uint16(code))
	p = append(p, reason...)
	// Not under mu: a write that holds it may be blocked on a peer that
	// does not read, with no deadline yet on coder's write path.
	c.wire.own.Store(&p)
}

// Write is coder/websocket's path to the socket: one flush of its buffer,
// which on the direct path is one whole control frame. A close frame is
// noted (no data may follow) and, if coder chose its reason, given
// DESIGN's fixed one. After a failed write nothing more is written: the
// socket is closed instead, so that a close handshake does not wait for
// the answer to a frame that never went out.
func (c *deadlineConn) Write(p []byte) (int, error) {
	w := &c.wire
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.broken {
		c.Conn.Close()
		return 0, errBroken
	}
	out := p
	switch {
	case w.direct && len(p) >= 2 && p[0] == frameFIN|opClose:
		w.closeSent = true
		out = w.closeOut(p)
	case !w.direct:
		if w.track == nil {
			w.track = new(frameTrack) // only coder's own write path needs it
		}
		out = w.track.fixCloses(p, w.closeOut)
	}
	c.armWrite()
	if _, err := c.Conn.Write(out); err != nil {
		w.broken = true
		return 0, err
	}
	return len(p), nil
}

// closeOut returns the close frame p as it goes out: unchanged if wssafe
// asked for it or its reason is the fixed one for its code, else, for the
// codes coder/websocket closes with by itself (1002 and 1009, whose
// reasons are its err.Error(), e.g. "read limited at 32769 bytes"), with
// the fixed reason of errors.go's table. w.mu is held.
func (w *wire) closeOut(p []byte) []byte {
	n := int(p[1] & 0x7F)
	if p[1]&0x80 != 0 || n > 125 || len(p) != 2+n || n < 2 || w.isOwn(p[2:]) {
		return p // not one whole unmasked close frame with a code: leave it
	}
	var reason string
	switch StatusCode(binary.BigEndian.Uint16(p[2:])) {
	case StatusProtocolError:
		_, reason = CloseFrame(ErrProtocol)
	case StatusMessageTooBig:
		_, reason = CloseFrame(ErrMessageTooBig)
	default:
		return p
	}
	if string(p[4:]) == reason {
		return p
	}
	out := make([]byte, 4, 4+len(reason))
	out[0], out[1], out[2], out[3] = p[0], byte(2+len(reason)), p[2], p[3]
	return append(out, reason...)
}

// frameTrack follows the frames of the byte stream coder/websocket writes
// on its own write path, one Write at a time, however its buffer cuts them:
// where the current frame's payload ends, and the start of a header that a
// Write cut short. Server frames are unmasked, but a mask is skipped too.
type frameTrack struct {
	rem uint64                   // payload bytes of the current frame still to come
	hdr [maxFrameHeader + 4]byte // the start of a header cut short by the end of a Write
	nh  int                      // bytes of hdr held
}

// fixCloses returns p with each close frame that lies whole within it
// replaced by fix(frame), in a new slice if any changed, and advances t
// past p. A close frame cut across Writes is left as it is.
func (t *frameTrack) fixCloses(p []byte, fix func([]byte) []byte) []byte {
	out := p
	var built []byte // out's copy, once a frame has changed; p[done:] is still to copy
	done := 0
	for i := 0; i < len(p); {
		if t.rem > 0 {
			k := int(min(t.rem, uint64(len(p)-i)))
			t.rem -= uint64(k)
			i += k
			continue
		}
		start := i - t.nh // where the header began in p; negative: in an earlier Write
		for t.nh < len(t.hdr) && i < len(p) && t.nh < headerLen(t.hdr[:t.nh]) {
			t.hdr[t.nh] = p[i]
			t.nh++
			i++
		}
		hl := headerLen(t.hdr[:t.nh])
		if t.nh < hl {
			break // the header goes on in the next Write
		}
		t.rem = payloadLen(t.hdr[:hl])
		t.nh = 0
		if t.hdr[0]&0x0F != opClose || start < 0 || t.rem > uint64(len(p)-i) {
			continue
		}
		end := i + int(t.rem)
		frame := p[start:end]
		if f := fix(frame); &f[0] != &frame[0] || len(f) != len(frame) {
			built = append(append(built, p[done:start]...), f...)
			done = end
		}
		t.rem = 0
		i = end
	}
	if built != nil {
		out = append(built, p[done:]...)
	}
	return out
}

// headerLen is the length of the frame header that h begins: 2 until its
// second byte is known, then with the extended length and mask key.
func headerLen(h []byte) int {
	if len(h) < 2 {
		return 2
	}
	n := 2
	switch h[1] & 0x7F {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if h[1]&0x80 != 0 {
		n += 4
	}
	return n
}

// payloadLen is the payload length in the whole frame header h.
func payloadLen(h []byte) uint64 {
	switch n := h[1] & 0x7F; n {
	case 126:
		return uint64(binary.BigEndian.Uint16(h[2:]))
	case 127:
		return binary.BigEndian.Uint64(h[2:])
	default:
		return uint64(n)
	}
}

// isOwn reports whether payload is that of the close wssafe announced.
func (w *wire) isOwn(payload []byte) bool {
	own := w.own.Load()
	return own != nil && string(payload) == string(*own)
}

// writeMessage writes one data message as one frame: its header, encoded
// here, and p.
func (c *deadlineConn) writeMessage(ctx context.Context, typ MessageType, p []byte) error {
	w := &c.wire
	w.mu.Lock()
	defer w.mu.Unlock()
	n := putHeader(w.hdr[:], 0, byte(typ), len(p))
	w.vec[0], w.vec[1] = w.hdr[:n], p
	return c.writeLocked(ctx, w.vec[:])
}

// writeFrame writes one encoded frame (see PreparedMessage).
func (c *deadlineConn) writeFrame(ctx context.Context, frame []byte) error {
	w := &c.wire
	w.mu.Lock()
	defer w.mu.Unlock()
	w.vec[0] = frame
	return c.writeLocked(ctx, w.vec[:1])
}

// writeFrames writes whole encoded frames in one writev.
func (c *deadlineConn) writeFrames(ctx context.Context, frames [][]byte) error {
	w := &c.wire
	w.mu.Lock()
	defer w.mu.Unlock()
	return c.writeLocked(ctx, frames)
}

// writeLocked writes the pieces of whole frames in one writev on a bare
// TCP connection, or gathered on any other, and clears the references to
// them; w.mu is held. It refuses to write after a close frame
// (ErrSessionClosed) or a failed write. A write that fails or that ctx
// cuts short leaves the stream mid-frame: the connection is marked broken
// and closed. ctx is honoured as coder/websocket's Write honours it: its
// end closes the connection.
func (c *deadlineConn) writeLocked(ctx context.Context, pieces [][]byte) error {
	w := &c.wire
	defer clear(pieces)
	if w.closeSent {
		return ErrSessionClosed
	}
	if w.broken {
		return errBroken
	}
	c.armWrite()
	var stop func() bool
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() { c.Conn.Close() })
	}
	var err error
	if w.tcp != nil {
		w.bufs = pieces
		_, err = w.bufs.WriteTo(w.tcp)
		w.bufs = nil
	} else {
		err = gather(c.Conn, pieces)
	}
	if stop != nil && !stop() && err == nil {
		err = ctx.Err() // the connection was closed as the write completed
	}
	if err != nil {
		w.broken = true
		if ctx.Err() != nil {
			err = ctx.Err()
		}
	}
	return err
}

// gatherMax is the largest buffer gather builds; a piece larger than that
// is written on its own.
const gatherMax = 64 << 10

var gatherPool = sync.Pool{New: func() any { return new([]byte) }}

// gather writes pieces to a connection that cannot writev (TLS, a wrapper)
// with as few Writes as it can: one for up to gatherMax bytes, so one per
// message of up to 64 KiB (a larger one is written as its header and its
// payload, two Writes).
func gather(nc net.Conn, pieces [][]byte) error {
	bp := gatherPool.Get().(*[]byte)
	b := (*bp)[:0]
	defer func() {
		*bp = b[:0]
		gatherPool.Put(bp)
	}()
	for _, x := range pieces {
		if len(b)+len(x) > gatherMax && len(b) > 0 {
			if _, err := nc.Write(b); err != nil {
				return err
			}
			b = b[:0]
		}
		if len(x) > gatherMax {
			if _, err := nc.Write(x); err != nil {
				return err
			}
			continue
		}
		b = append(b, x...)
	}
	if len(b) == 0 {
		return nil
	}
	_, err := nc.Write(b)
	return err
}

// dropBroken closes the connection if a write on it failed.
func (c *deadlineConn) dropBroken() {
	c.wire.mu.Lock()
	defer c.wire.mu.Unlock()
	if c.wire.broken {
		c.Conn.Close()
	}
}

// A PreparedMessage is a data message encoded once as a WebSocket frame,
// to be sent to many sessions without encoding or copying it again for
// each: server frames are not masked, so every peer gets the same bytes.
// Make one with [NewPreparedMessage] and queue it with
// [Session.SendPrepared]; [Hub.Broadcast] does this itself. It is
// immutable and safe for concurrent use. Sent to compressed sessions
// without context takeover, it is compressed once, when it is first
// written to one, and that frame is shared by all of them.
type PreparedMessage struct {
	typ   MessageType
	hlen  uint8  // the header's length: frame[hlen:] is the payload
	frame []byte // header and payload

	zonce sync.Once
	z     []byte // the compressed frame, made once by deflated; nil: not smaller, send frame
}

// deflated returns m's compressed frame (RSV1 set, its payload deflated on
// its own), compressing it on the first call, or nil if compressing does
// not make it smaller.
func (m *PreparedMessage) deflated() []byte {
	m.zonce.Do(func() {
		d := getDeflater()
		if start, end, ok := d.appendFrame(m.typ, m.frame[m.hlen:], false); ok {
			m.z = slices.Clone(d.buf[start:end])
		}
		putDeflater(d)
	})
	return m.z
}

// NewPreparedMessage encodes a message of type typ (MessageText or
// MessageBinary) with payload p, which it copies.
func NewPreparedMessage(typ MessageType, p []byte) *PreparedMessage {
	b, n := encode(typ, p)
	return &PreparedMessage{typ: typ, hlen: n, frame: b}
}

// encode returns the frame of a message of type typ with payload p, in
// one new buffer, and the length of its header.
func encode(typ MessageType, p []byte) ([]byte, uint8) {
	var hdr [maxFrameHeader]byte
	n := putHeader(hdr[:], 0, byte(typ), len(p))
	b := make([]byte, n+len(p))
	copy(b, hdr[:n])
	copy(b[n:], p)
	return b, uint8(n)
}
