package wssafe

// Borrowed read buffers: a connection holds a read buffer only while it
// holds bytes the session has not consumed, and none while it waits.

import (
	"io"
	"net"
	"sync"
	"syscall"
)

// sockReader reads a TCP connection through a buffer borrowed from a pool
// for each read and returned as soon as its bytes are consumed, so that an
// idle connection, waiting for its peer, owns no read buffer at all. The
// wait happens in the runtime's network poller with no buffer: the read
// system call runs inside syscall.RawConn.Read's callback, which takes a
// buffer, reads, and on EAGAIN puts the buffer back before the poller
// parks the goroutine. A read that finds data (the common case on a busy
// connection) costs one system call, as a plain Read does.
//
// coder/websocket still reads through a bufio.Reader, shrunk to
// borrowReaderSize bytes: frame headers and small payloads are copied out
// of it, and reads as large as the pool's buffers bypass both buffers.
//
// It is used only on a bare *net.TCPConn (or *net.UnixConn): a wrapped
// connection may hold bytes of its own (a PROXY protocol header reader, a
// TLS record), which a read from the file descriptor would skip. Reads are
// serialised by deadlineConn's callers, so sockReader needs no lock.
type sockReader struct {
	raw  syscall.RawConn
	pool *readPool
	buf  *[]byte // borrowed: holds unconsumed bytes buf[r:w]; nil when empty
	r, w int

	// The callback's arguments and results, kept here so that the
	// callback, a method value made once, allocates nothing per read.
	dst []byte
	n   int
	err error
	fn  func(fd uintptr) bool
}

// borrowReaderSize is the size of coder/websocket's bufio.Reader when a
// sockReader sits beneath it: a frame header (at most 14 bytes) and a
// small payload in one fill. Reads of at least this many bytes bypass it.
const borrowReaderSize = 128

// newSockReader returns a sockReader for c, or nil when c is not a bare
// socket whose file descriptor can be read directly, or pool is nil.
func newSockReader(c net.Conn, pool *readPool) *sockReader {
	if pool == nil {
		return nil
	}
	var sc syscall.Conn
	switch c := c.(type) {
	case *net.TCPConn:
		sc = c
	case *net.UnixConn:
		sc = c
	default:
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil || !canReadRaw {
		return nil
	}
	r := &sockReader{raw: raw, pool: pool}
	r.fn = r.readFD
	return r
}

// read reads into p: the bytes still held in the borrowed buffer first,
// then from the socket, directly into p when p is at least a pool buffer's
// size (a large payload: no copy), else through a borrowed buffer.
func (r *sockReader) read(c net.Conn, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if r.buf != nil {
		return r.take(p), nil
	}
	if len(p) >= r.pool.size {
		return c.Read(p)
	}
	r.dst = p
	err := r.raw.Read(r.fn)
	n, rerr := r.n, r.err
	r.dst, r.n, r.err = nil, 0, nil
	if err != nil { // the poller's: deadline, closed connection
		return 0, err
	}
	return n, rerr
}

// take copies into p the bytes held in the borrowed buffer, which must not
// be nil, and returns the buffer once they are all taken.
func (r *sockReader) take(p []byte) int {
	n := copy(p, (*r.buf)[r.r:r.w])
	r.r += n
	if r.r == r.w {
		r.release()
	}
	return n
}

// readFD is the RawConn callback: one read system call into a borrowed
// buffer. It returns false to wait for the socket to become readable,
// having put the buffer back.
func (r *sockReader) readFD(fd uintptr) bool {
	b := r.pool.get()
	n, err := readRaw(fd, *b)
	for err == syscall.EINTR {
		n, err = readRaw(fd, *b)
	}
	switch {
	case err == syscall.EAGAIN:
		r.pool.put(b)
		return false
	case err != nil:
		r.pool.put(b)
		r.err = &net.OpError{Op: "read", Net: "tcp", Err: wrapSyscallError("read", err)}
		return true
	case n == 0:
		r.pool.put(b)
		r.err = io.EOF
		return true
	}
	m := copy(r.dst, (*b)[:n])
	r.n = m
	if m < n {
		r.buf, r.r, r.w = b, m, n
	} else {
		r.pool.put(b)
	}
	return true
}

// release returns the borrowed buffer to the pool.
func (r *sockReader) release() {
	r.pool.put(r.buf)
	r.buf, r.r, r.w = nil, 0, 0
}

// A readPool holds read buffers of one size, shared by an endpoint's
// connections.
type readPool struct {
	size int
	p    sync.Pool
}

func newReadPool(size int) *readPool {
	bp := &readPool{size: size}
	bp.p.New = func() any {
		b := make([]byte, size)
		return &b
	}
	return bp
}

func (bp *readPool) get() *[]byte  { return bp.p.Get().(*[]byte) }
func (bp *readPool) put(b *[]byte) { bp.p.Put(b) }
