// Package wsclient is the benchmark's WebSocket client: a minimal,
// allocation-free echo driver that speaks just enough RFC 6455 to load a
// server. Every peer is driven by the same client, so the client's cost is
// the same in every column of the comparison.
package wsclient

import (
	"bufio"
	"bytes"
	"compress/flate"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Conn is one client connection. It is not safe for concurrent use.
type Conn struct {
	nc    net.Conn
	cc    *countConn // nc, counting the bytes on the wire
	br    *bufio.Reader
	frame []byte // the masked frame Echo sends, built once
	size  int    // its payload length
	hdr   [14]byte
	out   []byte // the frame Request sends, reused
	in    []byte // the message Request returns, reused

	// permessage-deflate (Options.Deflate), once negotiated
	deflate   bool
	serverCtx bool      // the server keeps its compression history: inflate every message with it
	window    []byte    // the server's history, the last 32 KiB it sent (serverCtx)
	msgs      *Messages // what Echo sends, in turn (SetMessages)
	next      int
	echoes    int
	inflated  []byte
	rsv1      bool // the last frame header read had RSV1 set (a compressed message's first frame)
}

// Dial connects to addr. With raw, no handshake is made (the TCP echo
// ceiling); otherwise a WebSocket handshake for path is performed.
func Dial(addr, path string, raw bool) (*Conn, error) {
	return DialWith(addr, path, raw, Options{})
}

// Options tunes a connection for the many-connection runs (idle memory,
// broadcast), where one load process holds thousands of them.
type Options struct {
	// Local is the source address to bind (nil: the kernel's choice). One
	// source address has about 28,000 ephemeral ports towards one server
	// address, and closed connections hold theirs for a minute: spreading
	// the connections over 127/8 keeps the runs from running out.
	Local *net.TCPAddr
	// ReadBuffer is the size of the connection's read buffer; zero means
	// 32 KiB (enough to read a 16 KiB echo in one system call).
	ReadBuffer int
	// Deflate offers permessage-deflate (RFC 7692) with
	// client_no_context_takeover, and server_no_context_takeover unless
	// ServerContext is set. Once the server accepts, the connection
	// sends its messages compressed (each on its own) and inflates the
	// server's compressed ones.
	Deflate       bool
	ServerContext bool
}

// DialWith is [Dial] with o.
func DialWith(addr, path string, raw bool, o Options) (*Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	if o.Local != nil {
		d.LocalAddr = o.Local
	}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c, err := handshake(nc, addr, path, raw, o)
	if err != nil {
		nc.Close()
	}
	return c, err
}

// Handshake performs the client handshake on an established connection.
func Handshake(nc net.Conn, host, path string, raw bool) (*Conn, error) {
	return handshake(nc, host, path, raw, Options{})
}

func handshake(nc net.Conn, host, path string, raw bool, o Options) (*Conn, error) {
	bufSize := o.ReadBuffer
	if bufSize <= 0 {
		bufSize = 32 << 10
	}
	cc := &countConn{Conn: nc}
	c := &Conn{nc: cc, cc: cc, br: bufio.NewReaderSize(cc, bufSize)}
	if raw {
		return c, nil
	}
	var key [16]byte
	rand.Read(key[:])
	req := "GET " + path + " HTTP/1.1\r\nHost: " + host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " +
		base64.StdEncoding.EncodeToString(key[:]) + "\r\n"
	if o.Deflate {
		req += "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover"
		if !o.ServerContext {
			req += "; server_no_context_takeover"
		}
		req += "\r\n"
	}
	req += "\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return nil, fmt.Errorf("wsclient: handshake answered %s", resp.Status)
	}
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); strings.HasPrefix(ext, "permessage-deflate") {
		if !o.Deflate {
			return nil, fmt.Errorf("wsclient: the server chose %q, not offered", ext)
		}
		c.deflate = true
		c.serverCtx = !strings.Contains(ext, "server_no_context_takeover")
	}
	return c, nil
}

// SetMessage prepares the message Echo sends: p in a masked text (or
// binary) frame.
func (c *Conn) SetMessage(p []byte, text bool) {
	op := byte(0x2)
	if text {
		op = 0x1
	}
	c.frame, c.size = appendFrame(nil, op, p), len(p)
}

// appendFrame appends p to f as one masked frame with opcode op.
func appendFrame(f []byte, op byte, p []byte) []byte {
	f = append(f, 0x80|op)
	switch n := len(p); {
	case n < 126:
		f = append(f, 0x80|byte(n))
	case n <= 0xFFFF:
		f = append(f, 0x80|126)
		f = binary.BigEndian.AppendUint16(f, uint16(n))
	default:
		f = append(f, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	var key [4]byte
	rand.Read(key[:])
	f = append(f, key[:]...)
	for i, b := range p {
		f = append(f, b^key[i%4])
	}
	return f
}

// Request sends p as a text message and returns the next data message the
// server sends, which is valid until the next call.
func (c *Conn) Request(p []byte) ([]byte, error) {
	c.out = appendFrame(c.out[:0], 0x1, p)
	if _, err := c.nc.Write(c.out); err != nil {
		return nil, err
	}
	c.in = c.in[:0]
	for {
		op, fin, n, err := c.readHeader()
		if err != nil {
			return nil, err
		}
		if op == 0x8 {
			return nil, errors.New("wsclient: server closed the connection")
		}
		start := len(c.in)
		c.in = append(c.in, make([]byte, n)...)
		if _, err := io.ReadFull(c.br, c.in[start:]); err != nil {
			return nil, err
		}
		if op >= 0x8 { // ping or pong
			c.in = c.in[:start]
			continue
		}
		if fin {
			return c.in, nil
		}
	}
}

// CloseHandshake closes cleanly: a close frame (1000), the server's close
// frame back, then the connection.
func (c *Conn) CloseHandshake() error {
	defer c.nc.Close()
	if _, err := c.nc.Write(appendFrame(c.out[:0], 0x8, []byte{0x03, 0xE8})); err != nil {
		return err
	}
	for {
		op, _, n, err := c.readHeader()
		if err != nil {
			return err
		}
		if _, err := c.br.Discard(n); err != nil {
			return err
		}
		if op == 0x8 {
			return nil
		}
	}
}

// Echo sends the prepared message and reads the server's echo of it;
// after SetMessages, the next of those messages, checked as echoNext says.
func (c *Conn) Echo() error {
	if c.msgs != nil {
		return c.echoNext()
	}
	if _, err := c.nc.Write(c.frame); err != nil {
		return err
	}
	got := 0
	for {
		op, fin, n, err := c.readHeader()
		if err != nil {
			return err
		}
		if op == 0x8 {
			return errors.New("wsclient: server closed the connection")
		}
		if _, err := c.br.Discard(n); err != nil {
			return err
		}
		if op >= 0x8 { // ping or pong: not part of the echo
			continue
		}
		got += n
		if fin {
			break
		}
	}
	if got != c.size {
		return fmt.Errorf("wsclient: echo of %d bytes came back as %d", c.size, got)
	}
	return nil
}

// ReadBroadcast reads the next data message, copies the start of its
// payload into head and discards the rest; it returns how many bytes it
// copied. Pings are answered with pongs on the way (a subscriber that
// only reads must still answer a server's keepalive); a close frame is an
// error.
func (c *Conn) ReadBroadcast(head []byte) (int, error) {
	copied := 0
	first := true
	for {
		op, fin, n, err := c.readHeader()
		if err != nil {
			return 0, err
		}
		switch op {
		case 0x8:
			return 0, errors.New("wsclient: server closed the connection")
		case 0x9, 0xA: // ping, pong
			if n > 125 {
				return 0, errors.New("wsclient: control frame over 125 bytes")
			}
			var p [125]byte
			if _, err := io.ReadFull(c.br, p[:n]); err != nil {
				return 0, err
			}
			if op == 0x9 {
				c.out = appendFrame(c.out[:0], 0xA, p[:n])
				if _, err := c.nc.Write(c.out); err != nil {
					return 0, err
				}
			}
			continue
		}
		if first && c.rsv1 {
			return c.readCompressed(head, fin, n)
		}
		if first {
			k := min(n, len(head))
			if _, err := io.ReadFull(c.br, head[:k]); err != nil {
				return 0, err
			}
			copied, n, first = k, n-k, false
		}
		if _, err := c.br.Discard(n); err != nil {
			return 0, err
		}
		if fin {
			return copied, nil
		}
	}
}

// readHeader reads a frame header and returns its opcode, FIN bit and
// payload length. A masked frame (the raw TCP echo returns the client's
// own frames) has its key skipped.
func (c *Conn) readHeader() (op byte, fin bool, n int, err error) {
	h := c.hdr[:2]
	if _, err = io.ReadFull(c.br, h); err != nil {
		return 0, false, 0, err
	}
	op, fin = h[0]&0x0F, h[0]&0x80 != 0
	c.rsv1 = h[0]&0x40 != 0
	n = int(h[1] & 0x7F)
	switch n {
	case 126:
		if _, err = io.ReadFull(c.br, c.hdr[2:4]); err == nil {
			n = int(binary.BigEndian.Uint16(c.hdr[2:4]))
		}
	case 127:
		if _, err = io.ReadFull(c.br, c.hdr[2:10]); err == nil {
			n = int(binary.BigEndian.Uint64(c.hdr[2:10]))
		}
	}
	if err == nil && h[1]&0x80 != 0 {
		_, err = c.br.Discard(4)
	}
	return op, fin, n, err
}

// Close drops the connection.
func (c *Conn) Close() error { return c.nc.Close() }

// Messages is a set of messages prepared for Echo to send in turn: each
// in a masked frame as it is, and compressed (RSV1, deflated on its own)
// for a connection that negotiated permessage-deflate.
type Messages struct {
	raw, plain, deflated [][]byte
}

// NewMessages prepares msgs, text (or binary) messages.
func NewMessages(msgs [][]byte, text bool) *Messages {
	op := byte(0x2)
	if text {
		op = 0x1
	}
	m := &Messages{raw: msgs}
	for _, p := range msgs {
		m.plain = append(m.plain, appendFrame(nil, op, p))
		f := appendFrame(nil, op, Deflate(p))
		f[0] |= 0x40
		m.deflated = append(m.deflated, f)
	}
	return m
}

// Deflate compresses p as one permessage-deflate message without context
// takeover (the RFC 7692 tail stripped), at zlib's default level, as
// browsers do.
func Deflate(p []byte) []byte {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.DefaultCompression)
	w.Write(p)
	w.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte{0x00, 0x00, 0xff, 0xff})
}

// SetMessages makes Echo send m's messages in turn.
func (c *Conn) SetMessages(m *Messages) { c.msgs, c.next = m, 0 }

// Compressed reports whether the connection negotiated permessage-deflate.
func (c *Conn) Compressed() bool { return c.deflate }

// WireBytes is how many bytes the connection has read and written on the
// wire so far, the handshake included.
func (c *Conn) WireBytes() (in, out int64) { return c.cc.in.Load(), c.cc.out.Load() }

// echoNext sends the next message of SetMessages's and reads its echo: an
// uncompressed echo must be the message, a compressed one is inflated and
// compared every 16th time (every time when the server keeps its history,
// which inflating must follow).
func (c *Conn) echoNext() error {
	i := c.next
	c.next = (c.next + 1) % len(c.msgs.raw)
	f := c.msgs.plain[i]
	if c.deflate {
		f = c.msgs.deflated[i]
	}
	if _, err := c.nc.Write(f); err != nil {
		return err
	}
	c.in = c.in[:0]
	compressed, first := false, true
	for {
		op, fin, n, err := c.readHeader()
		if err != nil {
			return err
		}
		if op == 0x8 {
			return errors.New("wsclient: server closed the connection")
		}
		if op >= 0x8 {
			if _, err := c.br.Discard(n); err != nil {
				return err
			}
			continue
		}
		if first {
			compressed, first = c.rsv1, false
		}
		start := len(c.in)
		c.in = append(c.in, make([]byte, n)...)
		if _, err := io.ReadFull(c.br, c.in[start:]); err != nil {
			return err
		}
		if fin {
			break
		}
	}
	want := c.msgs.raw[i]
	if !compressed {
		if !bytes.Equal(c.in, want) {
			return fmt.Errorf("wsclient: echo of %d bytes came back as %d other bytes", len(want), len(c.in))
		}
		return nil
	}
	if !c.deflate {
		return errors.New("wsclient: a compressed echo on a connection that did not negotiate compression")
	}
	c.echoes++
	if !c.serverCtx && c.echoes%16 != 1 {
		return nil
	}
	got, err := c.inflate(c.in)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("wsclient: echo of %d bytes inflated to %d other bytes", len(want), len(got))
	}
	return nil
}

// readCompressed reads the rest of a compressed broadcast whose first
// frame header ReadBroadcast has read and inflates the start of it into
// head (all of it when the server keeps its history).
func (c *Conn) readCompressed(head []byte, fin bool, n int) (int, error) {
	if !c.deflate {
		return 0, errors.New("wsclient: a compressed message on a connection that did not negotiate compression")
	}
	c.in = c.in[:0]
	for {
		start := len(c.in)
		c.in = append(c.in, make([]byte, n)...)
		if _, err := io.ReadFull(c.br, c.in[start:]); err != nil {
			return 0, err
		}
		if fin {
			break
		}
		var op byte
		var err error
		if op, fin, n, err = c.readHeader(); err != nil {
			return 0, err
		}
		if op != 0x0 {
			return 0, fmt.Errorf("wsclient: opcode %d inside a fragmented message", op)
		}
	}
	if c.serverCtx {
		got, err := c.inflate(c.in)
		if err != nil {
			return 0, err
		}
		return copy(head, got), nil
	}
	fr := inflater(c.in, nil)
	defer readers.Put(fr)
	k, err := io.ReadFull(fr, head)
	if err == io.ErrUnexpectedEOF {
		err = nil
	}
	return k, err
}

// deflateTail ends a message's deflate data: the sync flush RFC 7692
// strips, then an empty final block, so that the reader sees its end.
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

var readers sync.Pool

// inflater returns a pooled flate reader of p's compressed message, with
// dict as the history.
func inflater(p, dict []byte) io.ReadCloser {
	src := io.MultiReader(bytes.NewReader(p), bytes.NewReader(deflateTail))
	if fr, ok := readers.Get().(io.ReadCloser); ok {
		fr.(flate.Resetter).Reset(src, dict)
		return fr
	}
	return flate.NewReaderDict(src, dict)
}

// inflate returns p's message inflated, valid until the next call, and
// adds it to the server's history when the server keeps one.
func (c *Conn) inflate(p []byte) ([]byte, error) {
	fr := inflater(p, c.window)
	defer readers.Put(fr)
	c.inflated = c.inflated[:0]
	for {
		if len(c.inflated) == cap(c.inflated) {
			c.inflated = append(c.inflated, 0)[:len(c.inflated)]
		}
		k, err := fr.Read(c.inflated[len(c.inflated):cap(c.inflated)])
		c.inflated = c.inflated[:len(c.inflated)+k]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("wsclient: inflating: %w", err)
		}
	}
	if c.serverCtx {
		c.window = append(c.window, c.inflated...)
		if over := len(c.window) - 32<<10; over > 0 {
			c.window = append(c.window[:0], c.window[over:]...)
		}
	}
	return c.inflated, nil
}

// countConn counts the bytes read and written through it.
type countConn struct {
	net.Conn
	in, out atomic.Int64
}

func (c *countConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.Add(int64(n))
	return n, err
}

func (c *countConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.out.Add(int64(n))
	return n, err
}
