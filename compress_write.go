package wssafe

// Compressed writes: on the direct path wssafe deflates its own data
// frames (RFC 7692) with compress/flate, pooled writers without context
// takeover, one writer per session with it while it compresses (given
// back after 10-20 s without).

import (
	"compress/flate"
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// How wssafe deflates a message on the direct path (coder/websocket's
// Conn.Write does its own on the fallback path):
//
//   - Without context takeover (the default, deflate.serverNoContext) each
//     message is compressed on its own by a flate.Writer borrowed from
//     deflaters and reset for it, so an idle session holds no compressor.
//     A message whose compressed form is not smaller goes out plain: the
//     receiver takes either, and the bytes on the wire are what
//     compression is for.
//   - With context takeover (InsecureCompressionContextTakeover, when the
//     client agreed) the session keeps its own flate.Writer (Session.zctx,
//     about 1.2 MB, see deflaters) while it writes compressed messages,
//     and every message it compresses continues the same stream, in the
//     order the messages are written: compression happens under the
//     session's write lock, Write's and the send queue's drain's alike,
//     never at Send. The receiver's window holds every compressed
//     message, so once compressed a message must go out compressed, even
//     when that is not smaller. A session that has compressed nothing for
//     compressorIdle gives its writer back to the pool (idleCompressor),
//     and its next message starts a new stream from a pooled writer.
//     RFC 7692 allows that to a server that did not declare
//     server_no_context_takeover: the client's inflater keeps its window,
//     and a message that refers to none of it is valid. So the memory is
//     about 1.2 MB per session that compressed a message in the last
//     compressorIdle to 2 x compressorIdle, not per session.
//
// Either way the writer is sync-flushed at the end of the message, which
// ends the stream on a byte boundary with an empty stored block, 00 00 ff
// ff; that tail is stripped (RFC 7692 section 7.2.1) and the frame's RSV1
// set. Messages below CompressionThreshold, and those written with
// WriteUncompressed or SendUncompressed, go out plain (RSV1 clear), and
// do not touch the compression history.
//
// BestSpeed is the level. On 1 KiB of chat JSON it gives 203 bytes where
// levels 2 and 6 give 200 (Huffman-only 615), in less time, and its reset
// between messages is a counter bump, where every higher level clears
// 640 KiB of hash tables.

// deflateLevel is the level of every writer wssafe compresses with.
const deflateLevel = flate.BestSpeed

// rsvDeflate is RSV1, set on a compressed message's frame.
const rsvDeflate = 0x40

// deflateTail ends every sync flush; it is not sent.
const deflateTail = "\x00\x00\xff\xff"

// maxKeptDeflateBuf bounds the output buffer a deflater keeps between
// uses: a larger one, grown by a large message or batch, is dropped.
const maxKeptDeflateBuf = 64 << 10

// deflations counts the messages wssafe has compressed, for the tests
// (export_test.go) that check a broadcast is compressed once.
var deflations atomic.Uint64

// A deflater is a flate.Writer and the buffer it writes compressed frames
// to. It is not safe for concurrent use.
type deflater struct {
	fw  *flate.Writer
	buf []byte // frames built by appendFrame
}

// Write is where fw writes: it appends to buf and never fails.
func (d *deflater) Write(p []byte) (int, error) {
	d.buf = append(d.buf, p...)
	return len(p), nil
}

// deflaters are the writers borrowed for one message (or one batch) on
// sessions without context takeover, and given to a session that keeps
// one. A flate.Writer at BestSpeed is about 1.2 MB (1,207,910 bytes of
// heap each, measured over 20 writers), so none is held per idle session.
var deflaters = sync.Pool{New: func() any {
	d := new(deflater)
	d.fw, _ = flate.NewWriter(d, deflateLevel) // the level is valid: no error
	return d
}}

// getDeflater borrows a deflater. Its stream is where its last user left
// it: appendFrame resets it for each message without takeover, and a
// session that keeps it for takeover resets it once (sessionDeflater).
func getDeflater() *deflater { return deflaters.Get().(*deflater) }

// putDeflater returns d to the pool.
func putDeflater(d *deflater) {
	d.release()
	deflaters.Put(d)
}

// release empties d's buffer, and drops it if a large message grew it.
func (d *deflater) release() {
	if cap(d.buf) > maxKeptDeflateBuf {
		d.buf = nil
	}
	d.buf = d.buf[:0]
}

// appendFrame compresses a message of type typ with payload p and appends
// its frame (RSV1 set) to d.buf, returning where the frame lies in d.buf.
// Unless the stream must go on (takeover, the session's own writer), a
// compressed payload that is not smaller than p is dropped and ok is
// false: send p plain. Without takeover the stream is reset first.
func (d *deflater) appendFrame(typ MessageType, p []byte, takeover bool) (start, end int, ok bool) {
	if !takeover {
		d.fw.Reset(d)
	}
	base := len(d.buf)
	// Room for the longest header, filled once the length is known.
	d.buf = append(d.buf, make([]byte, maxFrameHeader)...)
	d.fw.Write(p) // d.Write never fails, and neither does fw then
	d.fw.Flush()
	end = len(d.buf) - len(deflateTail) // the sync flush ends with the tail
	z := end - base - maxFrameHeader
	if !takeover && z >= len(p) {
		d.buf = d.buf[:base]
		return 0, 0, false
	}
	deflations.Add(1)
	d.buf = d.buf[:end]
	var hdr [maxFrameHeader]byte
	n := putHeader(hdr[:], rsvDeflate, byte(typ), z)
	start = base + maxFrameHeader - n
	copy(d.buf[start:], hdr[:n])
	return start, end, true
}

// compresses reports whether a message of n payload bytes goes to s
// compressed on the direct path, unless its writer asked for it plain.
func (s *Session) compresses(n int) bool {
	return s.dc.deflate.on && n >= s.ep.cfg.CompressionThreshold
}

// takeover reports whether s keeps one compression stream across its
// messages (InsecureCompressionContextTakeover, agreed by the client).
func (s *Session) takeover() bool { return !s.dc.deflate.serverNoContext }

// compressorIdle is how long a session with context takeover keeps its
// compressor without compressing a message: idleCompressor returns it to
// the pool between compressorIdle and twice that after the last one.
// Messages more often than that keep their history; the first after a
// pause starts a new stream, which costs only the history (a BestSpeed
// writer's reset is cheap, see deflateLevel).
const compressorIdle = 10 * time.Second

// sessionDeflater returns the deflater a message to s is compressed with:
// s's own with context takeover, taken from the pool when s holds none
// (its first compressed message, or the first after idleCompressor gave
// it back) with the release timer armed, else a borrowed one, to be
// returned with doneDeflater. s.wmu is held.
func (s *Session) sessionDeflater() *deflater {
	if !s.takeover() {
		return getDeflater()
	}
	if s.zctx == nil {
		s.zctx = getDeflater()
		s.zctx.fw.Reset(s.zctx) // a new stream
		s.armCompressorIdle()
	}
	s.zhot = true
	return s.zctx
}

// armCompressorIdle arms the timer that looks, compressorIdle from now,
// whether s still compresses (see idleCompressor): made on first use, so
// that a session that never compresses has no such timer. It costs a
// timer update per compressorIdle of compressing, never one per message.
func (s *Session) armCompressorIdle() {
	s.timerMu.Lock()
	defer s.timerMu.Unlock()
	switch {
	case s.ctx.Err() != nil: // stopTimers has run, or is about to
	case s.zidle == nil:
		s.zidle = s.ep.cfg.clock.afterFunc(compressorIdle, s.idleCompressor)
	default:
		s.zidle.Reset(compressorIdle)
	}
}

// idleCompressor runs on the release timer's goroutine, compressorIdle
// after the timer was armed: it returns s's compressor to the pool if s
// has compressed no message since the last look, and looks again
// compressorIdle later otherwise. It never waits for the write lock: a
// write that holds it is about to compress, or may be (a drain's batch),
// so the compressor counts as in use.
func (s *Session) idleCompressor() {
	if !s.wmu.TryLock() {
		s.armCompressorIdle()
		return
	}
	defer s.wmu.Unlock()
	switch {
	case s.zctx == nil: // dropped at the session's end
	case s.zhot:
		s.zhot = false
		s.armCompressorIdle()
	default:
		putDeflater(s.zctx)
		s.zctx = nil
	}
}

// doneDeflater gives back what sessionDeflater returned. s.wmu is held.
func (s *Session) doneDeflater(d *deflater) {
	if d == s.zctx {
		if s.ctx.Err() != nil {
			// The session has ended: dropDeflater may have found the lock
			// held by this write, and the release timer is stopped, so
			// nothing else would give the compressor back.
			putDeflater(d)
			s.zctx = nil
			return
		}
		d.release()
		return
	}
	putDeflater(d)
}

// dropDeflater returns the compressor kept under context takeover to the
// pool once the session has ended (its release timer is stopped). If a
// write holds the lock, that write gives it back as it finishes (see
// doneDeflater), as does any write made after the end.
func (s *Session) dropDeflater() {
	if !s.wmu.TryLock() {
		return
	}
	if s.zctx != nil {
		putDeflater(s.zctx)
		s.zctx = nil
	}
	s.wmu.Unlock()
}

// writeDeflated writes one message compressed, or plain if compressing
// does not make it smaller (without takeover); s.wmu is held.
func (s *Session) writeDeflated(ctx context.Context, typ MessageType, p []byte) error {
	d := s.sessionDeflater()
	defer s.doneDeflater(d)
	start, end, ok := d.appendFrame(typ, p, s.takeover())
	if !ok {
		return s.dc.writeMessage(ctx, typ, p)
	}
	return s.dc.writeFrame(ctx, d.buf[start:end])
}

// writeCoderPlain writes p uncompressed through coder/websocket on a
// compressed session (the fallback path): coder's Conn.Write would
// compress a message of its threshold or more, but its Writer decides on
// the first Write, so the message goes out as a first frame shorter than
// the threshold and a continuation frame with the rest.
func (s *Session) writeCoderPlain(ctx context.Context, typ MessageType, p []byte) error {
	w, err := s.conn.Writer(ctx, typ)
	if err != nil {
		return err
	}
	k := min(len(p), s.ep.cfg.CompressionThreshold-1)
	if _, err := w.Write(p[:k]); err != nil {
		return err
	}
	if k < len(p) {
		if _, err := w.Write(p[k:]); err != nil {
			return err
		}
	}
	return w.Close()
}

// WriteUncompressed is [Session.Write] without compression: the message
// goes out plain even on a compressed session (see
// [Options.Compression]). Use it for a message that holds both a secret
// (a token, another user's data) and text an attacker chose: compressed,
// its size would reveal how much of the attacker's text matches the
// secret (BREACH), whether or not context takeover is on. On a session
// without compression it is Write.
func (s *Session) WriteUncompressed(ctx context.Context, typ MessageType, p []byte) error {
	return s.write(ctx, typ, p, true)
}

// SendUncompressed is [Session.Send] without compression, for the same
// messages as [Session.WriteUncompressed].
func (s *Session) SendUncompressed(typ MessageType, p []byte) error {
	return s.send(typ, p, true)
}
