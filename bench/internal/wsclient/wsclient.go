// Package wsclient is the benchmark's WebSocket client: a minimal,
// allocation-free echo driver that speaks just enough RFC 6455 to load a
// server. Every peer is driven by the same client, so the client's cost is
// the same in every column of the comparison.
package wsclient

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Conn is one client connection. It is not safe for concurrent use.
type Conn struct {
	nc    net.Conn
	br    *bufio.Reader
	frame []byte // the masked frame Echo sends, built once
	size  int    // its payload length
	hdr   [14]byte
	out   []byte // the frame Request sends, reused
	in    []byte // the message Request returns, reused
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
	c, err := handshake(nc, addr, path, raw, o.ReadBuffer)
	if err != nil {
		nc.Close()
	}
	return c, err
}

// Handshake performs the client handshake on an established connection.
func Handshake(nc net.Conn, host, path string, raw bool) (*Conn, error) {
	return handshake(nc, host, path, raw, 0)
}

func handshake(nc net.Conn, host, path string, raw bool, bufSize int) (*Conn, error) {
	if bufSize <= 0 {
		bufSize = 32 << 10
	}
	c := &Conn{nc: nc, br: bufio.NewReaderSize(nc, bufSize)}
	if raw {
		return c, nil
	}
	var key [16]byte
	rand.Read(key[:])
	req := "GET " + path + " HTTP/1.1\r\nHost: " + host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " +
		base64.StdEncoding.EncodeToString(key[:]) + "\r\n\r\n"
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

// Echo sends the prepared message and reads the server's echo of it.
func (c *Conn) Echo() error {
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
