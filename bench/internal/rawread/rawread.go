// Package rawread is a prototype, for measurement only: a server-side
// WebSocket frame reader working directly on the hijacked connection's
// bufio.Reader, without coder/websocket's read path (its channel-based
// locks, select on every lock, context plumbing). It exists so that the
// cost of reading frames can be compared with coder's on numbers
// (BenchmarkReadPath); the library does not use it.
//
// It does what a server's reader must for RFC 6455: it refuses unmasked
// client frames, reserved bits, unknown opcodes, fragmented or oversized
// control frames, non-minimal or oversized lengths, continuations out of
// order and interleaved data messages; it reassembles fragmented messages,
// answers control frames interleaved between fragments, checks UTF-8
// across fragment boundaries as the bytes arrive, enforces a message size
// limit before reading the payload, and validates a close frame's code and
// reason. It does not implement compression (permessage-deflate), the
// closing side of the close handshake's timeout, or read deadlines: those
// are the caller's.
package rawread

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"unicode/utf8"
)

// Opcodes (RFC 6455 section 5.2).
const (
	OpContinuation = 0x0
	OpText         = 0x1
	OpBinary       = 0x2
	OpClose        = 0x8
	OpPing         = 0x9
	OpPong         = 0xA
)

// Close codes used here.
const (
	CloseNormal        = 1000
	CloseProtocolError = 1002
	CloseInvalidData   = 1007
	CloseTooBig        = 1009
)

// CloseError ends a connection: Code is the close code to send (for a
// close frame received, the peer's code, Remote true).
type CloseError struct {
	Code   uint16
	Reason string
	Remote bool
}

func (e *CloseError) Error() string {
	if e.Remote {
		return fmt.Sprintf("rawread: peer closed: %d", e.Code)
	}
	return fmt.Sprintf("rawread: %d: %s", e.Code, e.Reason)
}

func protocolError(reason string) error {
	return &CloseError{Code: CloseProtocolError, Reason: reason}
}

// Reader reads a client's messages. Only one goroutine may use it.
type Reader struct {
	br *bufio.Reader
	// Limit is the largest message accepted, in bytes (0: no limit).
	Limit int
	// CheckUTF8 refuses text messages (and close reasons) that are not
	// valid UTF-8, with 1007, as soon as the invalid bytes arrive.
	CheckUTF8 bool
	// Control is called for every ping and pong (payload unmasked, valid
	// until the next read); an error it returns ends the read. A nil
	// Control ignores them.
	Control func(op byte, payload []byte) error

	ctrl [125]byte
}

// NewReader reads frames from br (the hijacked connection's reader, which
// may hold bytes the client sent with its handshake).
func NewReader(br *bufio.Reader) *Reader { return &Reader{br: br} }

type header struct {
	fin    bool
	op     byte
	length uint64
	key    uint32
}

// header reads and checks one frame header.
func (r *Reader) header() (header, error) {
	b, err := r.br.Peek(2)
	if err != nil {
		return header{}, err
	}
	var h header
	h.fin = b[0]&0x80 != 0
	if b[0]&0x70 != 0 {
		return h, protocolError("reserved bits set")
	}
	h.op = b[0] & 0x0F
	if b[1]&0x80 == 0 {
		return h, protocolError("unmasked client frame")
	}
	n := 2 + 4
	switch l := b[1] & 0x7F; l {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b, err = r.br.Peek(n); err != nil {
		return h, err
	}
	switch l := b[1] & 0x7F; l {
	case 126:
		h.length = uint64(binary.BigEndian.Uint16(b[2:]))
		if h.length < 126 {
			return h, protocolError("non-minimal length")
		}
	case 127:
		h.length = binary.BigEndian.Uint64(b[2:])
		if h.length>>63 != 0 || h.length <= 0xFFFF {
			return h, protocolError("invalid 64-bit length")
		}
	default:
		h.length = uint64(l)
	}
	h.key = binary.LittleEndian.Uint32(b[n-4:])
	r.br.Discard(n)
	switch h.op {
	case OpContinuation, OpText, OpBinary:
	case OpClose, OpPing, OpPong:
		if !h.fin {
			return h, protocolError("fragmented control frame")
		}
		if h.length > 125 {
			return h, protocolError("control frame too long")
		}
	default:
		return h, protocolError("unknown opcode")
	}
	return h, nil
}

// ReadMessage reads the next data message into buf's storage (growing it
// if needed) and returns its opcode (OpText or OpBinary) and bytes. Control
// frames before or between its fragments are handled on the way. A close
// frame from the peer returns a *CloseError with Remote set; a protocol
// violation a *CloseError with the code to close with; a failed read the
// reader's error.
func (r *Reader) ReadMessage(buf []byte) (byte, []byte, error) {
	b := buf[:0]
	var op byte
	valid := 0 // b[:valid] is known valid UTF-8
	for {
		h, err := r.header()
		if err != nil {
			return 0, b, err
		}
		switch h.op {
		case OpPing, OpPong, OpClose:
			p := r.ctrl[:h.length]
			if _, err := io.ReadFull(r.br, p); err != nil {
				return 0, b, err
			}
			mask(p, h.key)
			if h.op == OpClose {
				return 0, b, r.closeFrame(p)
			}
			if r.Control != nil {
				if err := r.Control(h.op, p); err != nil {
					return 0, b, err
				}
			}
			continue
		case OpContinuation:
			if op == 0 {
				return 0, b, protocolError("continuation without a message")
			}
		default:
			if op != 0 {
				return 0, b, protocolError("new message inside a fragmented one")
			}
			op = h.op
		}
		if r.Limit > 0 && h.length > uint64(r.Limit-len(b)) {
			return 0, b, &CloseError{Code: CloseTooBig, Reason: "message too big"}
		}
		start := len(b)
		n := int(h.length)
		if cap(b)-len(b) < n {
			nb := make([]byte, len(b), len(b)+n+len(b)/2)
			copy(nb, b)
			b = nb
		}
		b = b[:start+n]
		if _, err := io.ReadFull(r.br, b[start:]); err != nil {
			return 0, b[:start], err
		}
		mask(b[start:], h.key)
		if op == OpText && r.CheckUTF8 {
			end := len(b)
			if !h.fin {
				end = fullRunes(b, valid)
			}
			if !utf8.Valid(b[valid:end]) {
				return 0, b, &CloseError{Code: CloseInvalidData, Reason: "invalid UTF-8"}
			}
			valid = end
		}
		if h.fin {
			return op, b, nil
		}
	}
}

// closeFrame checks a received close frame's payload.
func (r *Reader) closeFrame(p []byte) error {
	switch {
	case len(p) == 0:
		return &CloseError{Code: 1005, Remote: true}
	case len(p) == 1:
		return protocolError("close payload of one byte")
	}
	code := binary.BigEndian.Uint16(p)
	if !validCloseCode(code) {
		return protocolError("invalid close code")
	}
	if !utf8.Valid(p[2:]) {
		return protocolError("close reason not UTF-8")
	}
	return &CloseError{Code: code, Remote: true}
}

func validCloseCode(c uint16) bool {
	switch {
	case c >= 3000 && c <= 4999:
		return true
	case c >= 1000 && c <= 1014:
		return c != 1004 && c != 1005 && c != 1006
	}
	return false
}

// fullRunes is b's end without an incomplete encoding at its end, never
// before from (the same rule as wssafe's streaming check).
func fullRunes(b []byte, from int) int {
	for i := len(b) - 1; i >= from && i > len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if utf8.FullRune(b[i:]) {
				return len(b)
			}
			return i
		}
	}
	return len(b)
}

// mask XORs b with the 4-byte key (little-endian, the bytes in wire order),
// 8 bytes at a time; every frame starts at key offset 0.
func mask(b []byte, key uint32) {
	k := uint64(key) | uint64(key)<<32
	for len(b) >= 32 {
		binary.LittleEndian.PutUint64(b, binary.LittleEndian.Uint64(b)^k)
		binary.LittleEndian.PutUint64(b[8:], binary.LittleEndian.Uint64(b[8:])^k)
		binary.LittleEndian.PutUint64(b[16:], binary.LittleEndian.Uint64(b[16:])^k)
		binary.LittleEndian.PutUint64(b[24:], binary.LittleEndian.Uint64(b[24:])^k)
		b = b[32:]
	}
	for len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, binary.LittleEndian.Uint64(b)^k)
		b = b[8:]
	}
	for i := range b {
		b[i] ^= byte(key)
		key = bits.RotateLeft32(key, -8)
	}
}

// AppendFrame appends an unmasked server frame (FIN set) of op and p.
func AppendFrame(dst []byte, op byte, p []byte) []byte {
	dst = append(dst, 0x80|op)
	switch n := len(p); {
	case n < 126:
		dst = append(dst, byte(n))
	case n <= 0xFFFF:
		dst = binary.BigEndian.AppendUint16(append(dst, 126), uint16(n))
	default:
		dst = binary.BigEndian.AppendUint64(append(dst, 127), uint64(n))
	}
	return append(dst, p...)
}

// ErrNotWebSocket is returned by Upgrade for a request that is not a
// WebSocket handshake.
var ErrNotWebSocket = errors.New("rawread: not a WebSocket handshake")
