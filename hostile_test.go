package wssafe_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wssafe/wssafe"
)

// The hostile suite: hand-built frames over a raw TCP connection after a
// real handshake, one row per attack, modelled on the case groups of the
// Autobahn|Testsuite (which cannot run here: it needs Docker or Python 2).
// Every row asserts the close code the server answers with (or the HTTP
// status of the handshake), a time bound, the security log event where
// wssafe logs one, and that a bystander session on the same endpoint still
// works afterwards. HOSTILE.md maps the rows to the Autobahn groups.

// Frame opcodes (RFC 6455 section 5.2).
const (
	opCont   = 0x0
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xA
)

// Reserved-bit masks for a frame's first byte.
const (
	rsv1 = 0x40
	rsv2 = 0x20
	rsv3 = 0x10
)

// defaultBound is the time a row may take from its first hostile frame to
// the server's close frame. The reactions are immediate; the slack is for
// -race on a loaded 2-core machine.
const defaultBound = 3 * time.Second

// frame is one client frame, built by hand so that it can break the rules.
type frame struct {
	op       byte
	data     []byte
	more     bool     // FIN clear: more fragments follow
	rsv      byte     // reserved bits to set (rsv1|rsv2|rsv3)
	unmasked bool     // send without a mask (clients must mask)
	length   *uint64  // declared payload length, when it should lie
	key      *[4]byte // masking key; nil: a random one
}

func (f frame) bytes() []byte {
	b0 := f.op | f.rsv
	if !f.more {
		b0 |= 0x80
	}
	n := uint64(len(f.data))
	if f.length != nil {
		n = *f.length
	}
	out := []byte{b0}
	var maskBit byte = 0x80
	if f.unmasked {
		maskBit = 0
	}
	switch {
	case n < 126 && f.length == nil:
		out = append(out, maskBit|byte(n))
	case n <= 0xFFFF && f.length == nil:
		out = append(out, maskBit|126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	default:
		out = append(out, maskBit|127)
		out = binary.BigEndian.AppendUint64(out, n)
	}
	payload := append([]byte(nil), f.data...)
	if !f.unmasked {
		var key [4]byte
		rand.Read(key[:])
		if f.key != nil {
			key = *f.key
		}
		out = append(out, key[:]...)
		for i := range payload {
			payload[i] ^= key[i%4]
		}
	}
	return append(out, payload...)
}

func textFrame(s string) frame { return frame{op: opText, data: []byte(s)} }
func binFrame(p []byte) frame  { return frame{op: opBinary, data: p} }

// closeFrame builds a close frame with a code and reason.
func closeFrame(code uint16, reason string) frame {
	p := binary.BigEndian.AppendUint16(nil, code)
	return frame{op: opClose, data: append(p, reason...)}
}

func lenOf(n uint64) *uint64 { return &n }

// hostileConn is a client that speaks WebSocket by hand.
type hostileConn struct {
	nc  net.Conn
	br  *bufio.Reader
	ext string // the Sec-WebSocket-Extensions of the server's 101
}

// hostileRequest opens a TCP connection to the server behind wsURL and writes a
// handshake request with the given extra header lines (nil values delete
// the default header of that name).
func hostileRequest(t *testing.T, wsURL string, method string, hdr map[string]string) (*hostileConn, string) {
	t.Helper()
	return hostileRequestThen(t, wsURL, method, hdr, nil)
}

// hostileRequestThen is hostileRequest with after written in the same
// Write as the request, as a client that pipelines its first frames does.
func hostileRequestThen(t *testing.T, wsURL string, method string, hdr map[string]string, after []byte) (*hostileConn, string) {
	t.Helper()
	host := strings.TrimPrefix(wsURL, "ws://")
	nc, err := net.DialTimeout("tcp", host, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { nc.Close() })
	var keyBytes [16]byte
	rand.Read(keyBytes[:])
	key := base64.StdEncoding.EncodeToString(keyBytes[:])
	h := map[string]string{
		"Host":                  host,
		"Upgrade":               "websocket",
		"Connection":            "Upgrade",
		"Sec-WebSocket-Key":     key,
		"Sec-WebSocket-Version": "13",
	}
	for k, v := range hdr {
		h[k] = v
	}
	var req strings.Builder
	req.WriteString(method + " / HTTP/1.1\r\n")
	for k, v := range h {
		if v != "" {
			req.WriteString(k + ": " + v + "\r\n")
		}
	}
	req.WriteString("\r\n")
	_, err = nc.Write(append([]byte(req.String()), after...))
	require.NoError(t, err)
	return &hostileConn{nc: nc, br: bufio.NewReader(nc)}, key
}

// hostileDial completes a real handshake and checks the server's answer.
func hostileDial(t *testing.T, wsURL string) *hostileConn {
	t.Helper()
	c, key := hostileRequest(t, wsURL, http.MethodGet, nil)
	return hostileUpgraded(t, c, key)
}

// hostileUpgraded reads the server's answer to c's handshake request and
// requires a 101 with the right Sec-WebSocket-Accept for key.
func hostileUpgraded(t *testing.T, c *hostileConn, key string) *hostileConn {
	t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(c.br, nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	require.Equal(t, base64.StdEncoding.EncodeToString(sum[:]), resp.Header.Get("Sec-WebSocket-Accept"))
	c.ext = resp.Header.Get("Sec-WebSocket-Extensions")
	c.nc.SetReadDeadline(time.Time{})
	return c
}

// outcome is what the server did in answer to a row's frames.
type outcome struct {
	code     int      // close code received; 1005 for an empty close frame; -1 if the TCP connection ended without one; 0 if nothing happened in time
	reason   string   // close reason received
	messages []string // data messages received before the close
	pongs    []string // pong payloads received
	elapsed  time.Duration
}

// readFrame reads one server frame of at most 1 MiB (readSentFrame, in
// deflate_helpers_test.go). Servers never mask.
func (c *hostileConn) readFrame() (op byte, fin bool, payload []byte, err error) {
	b0, _, payload, err := readSentFrame(c.br, 1<<20)
	return b0 & 0x0F, b0&0x80 != 0, payload, err
}

// readUntilClose collects the server's frames until its close frame or the
// end of the connection, for at most limit.
func (c *hostileConn) readUntilClose(start time.Time, limit time.Duration) outcome {
	c.nc.SetReadDeadline(start.Add(limit))
	var out outcome
	var msg []byte
	for {
		op, fin, p, err := c.readFrame()
		out.elapsed = time.Since(start)
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
			out.code = -1
			return out
		case err != nil: // the deadline: the server did not answer
			return out
		}
		switch op {
		case opClose:
			out.code = 1005
			if len(p) >= 2 {
				out.code = int(binary.BigEndian.Uint16(p))
				out.reason = string(p[2:])
			}
			return out
		case opPong:
			out.pongs = append(out.pongs, string(p))
		case opText, opBinary, opCont:
			msg = append(msg, p...)
			if fin {
				out.messages = append(out.messages, string(msg))
				msg = nil
			}
		}
	}
}

// sender writes a row's frames; stop ends an endless sender.
type sender func(stop <-chan struct{}, w io.Writer)

// frames returns a sender that writes fs in order, then stops.
func frames(fs ...frame) sender {
	return func(_ <-chan struct{}, w io.Writer) {
		for _, f := range fs {
			if _, err := w.Write(f.bytes()); err != nil {
				return
			}
		}
	}
}

// repeat writes first, then f every period until stopped or until the
// server stops reading.
func repeatEvery(first, f frame, period time.Duration) sender {
	return func(stop <-chan struct{}, w io.Writer) {
		if _, err := w.Write(first.bytes()); err != nil {
			return
		}
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := w.Write(f.bytes()); err != nil {
					return
				}
			}
		}
	}
}

// play runs a sender against c and returns the server's answer.
func (c *hostileConn) play(send sender, bound time.Duration) outcome {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	wg.Go(func() { send(stop, c.nc) })
	out := c.readUntilClose(start, bound+5*time.Second)
	close(stop)
	c.nc.SetWriteDeadline(time.Now()) // unblock a sender stuck on a full socket
	wg.Wait()
	c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	c.nc.Write(closeFrame(1000, "").bytes()) // finish the close handshake; may fail
	return out
}

// mirrorHandler echoes every message with its own type.
var mirrorHandler = wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
	return s.Write(ctx, m.Type, m.Data)
})

type hostileRow struct {
	group string // Autobahn|Testsuite case group
	name  string
	opts  func(*wssafe.Options)
	send  sender

	code     int      // close code the server must send
	messages []string // data messages echoed before the close
	pongs    []string // pongs received before the close (nil: not checked)
	maxPongs int      // at most this many pongs (0: not checked)
	event    string   // log event wssafe must emit ("" for none required)
	alone    bool     // the row's options would close an idle bystander too
	bound    time.Duration
	atLeast  time.Duration // a timer-driven close must not come before this (timers armed at the handshake started a little earlier)
}

func hostileRows() []hostileRow {
	long := strings.Repeat("a", 125)
	euro := "a" + strings.Repeat("€", 2000) // 3-byte runes that straddle read chunks
	return []hostileRow{
		// 1.x framing
		{group: "1 framing", name: "text 0 bytes", send: frames(textFrame(""), closeFrame(1000, "")), code: 1000, messages: []string{""}},
		{group: "1 framing", name: "text 125 bytes", send: frames(textFrame(long), closeFrame(1000, "")), code: 1000, messages: []string{long}},
		{group: "1 framing", name: "text 126 bytes (16-bit length)", send: frames(textFrame(long+"b"), closeFrame(1000, "")), code: 1000, messages: []string{long + "b"}},
		{group: "1 framing", name: "binary 65536 bytes (64-bit length)", opts: withReadLimit(1 << 17),
			send: frames(binFrame(make([]byte, 65536)), closeFrame(1000, "")), code: 1000, messages: []string{string(make([]byte, 65536))}},
		{group: "1 framing", name: "unmasked client frame", send: frames(frame{op: opText, data: []byte("hi"), unmasked: true}), code: 1002, event: wssafe.EventProtocolError},
		{group: "1 framing", name: "64-bit length with the MSB set", send: frames(frame{op: opBinary, length: lenOf(1 << 63)}), code: 1002, event: wssafe.EventProtocolError},

		// 2.x pings and pongs
		{group: "2 pings", name: "ping echoed as pong", send: frames(frame{op: opPing, data: []byte("hello")}, closeFrame(1000, "")), code: 1000, pongs: []string{"hello"}},
		{group: "2 pings", name: "ping with 125-byte payload", send: frames(frame{op: opPing, data: []byte(long)}, closeFrame(1000, "")), code: 1000, pongs: []string{long}},
		{group: "2 pings", name: "ping with 126-byte payload", send: frames(frame{op: opPing, data: []byte(long + "b")}), code: 1002, event: wssafe.EventProtocolError},
		{group: "2 pings", name: "unsolicited pong ignored", send: frames(frame{op: opPong, data: []byte("x")}, textFrame("after"), closeFrame(1000, "")), code: 1000, messages: []string{"after"}},
		{group: "2 pings", name: "ping flood", send: frames(repeatFrame(frame{op: opPing, data: []byte("p")}, 100)...), code: 1008, event: wssafe.EventPingFlood, maxPongs: wssafe.DefaultPingBurst + 1},
		{group: "2 pings", name: "unsolicited pong flood", send: frames(repeatFrame(frame{op: opPong, data: []byte("p")}, 100)...), code: 1008, event: wssafe.EventPongFlood},
		{group: "2 pings", name: "pings unanswered by the client", opts: withKeepalive(100*time.Millisecond, 200*time.Millisecond),
			send: frames(), code: 3008, event: wssafe.EventPongTimeout, alone: true, atLeast: 200 * time.Millisecond, bound: 300*time.Millisecond + defaultBound},

		// 3.x reserved bits
		{group: "3 reserved bits", name: "RSV1 on text (no extension)", send: frames(frame{op: opText, data: []byte("x"), rsv: rsv1}), code: 1002, event: wssafe.EventProtocolError},
		{group: "3 reserved bits", name: "RSV2 on text", send: frames(frame{op: opText, data: []byte("x"), rsv: rsv2}), code: 1002, event: wssafe.EventProtocolError},
		{group: "3 reserved bits", name: "RSV3 on binary", send: frames(frame{op: opBinary, data: []byte("x"), rsv: rsv3}), code: 1002, event: wssafe.EventProtocolError},
		{group: "3 reserved bits", name: "RSV1|2|3 on ping", send: frames(frame{op: opPing, rsv: rsv1 | rsv2 | rsv3}), code: 1002, event: wssafe.EventProtocolError},
		{group: "3 reserved bits", name: "RSV2 after a valid message", send: frames(textFrame("ok"), frame{op: opText, data: []byte("x"), rsv: rsv2}), code: 1002, messages: []string{"ok"}, event: wssafe.EventProtocolError},

		// 4.x opcodes
		{group: "4 opcodes", name: "reserved data opcode 3", send: frames(frame{op: 3}), code: 1002, event: wssafe.EventProtocolError},
		{group: "4 opcodes", name: "reserved data opcode 4", send: frames(frame{op: 4, data: []byte("x")}), code: 1002, event: wssafe.EventProtocolError},
		{group: "4 opcodes", name: "reserved data opcode 5", send: frames(frame{op: 5}), code: 1002, event: wssafe.EventProtocolError},
		{group: "4 opcodes", name: "reserved data opcode 6", send: frames(frame{op: 6}), code: 1002, event: wssafe.EventProtocolError},
		{group: "4 opcodes", name: "reserved data opcode 7", send: frames(textFrame("ok"), frame{op: 7}), code: 1002, messages: []string{"ok"}, event: wssafe.EventProtocolError},
		{group: "4 opcodes", name: "reserved control opcode 0xB", send: frames(frame{op: 0xB}), code: 1002, event: wssafe.EventProtocolError},
		{group: "4 opcodes", name: "reserved control opcode 0xC", send: frames(frame{op: 0xC, data: []byte("x")}), code: 1002, event: wssafe.EventProtocolError},
		{group: "4 opcodes", name: "reserved control opcode 0xD", send: frames(frame{op: 0xD}), code: 1002, event: wssafe.EventProtocolError},
		{group: "4 opcodes", name: "reserved control opcode 0xE", send: frames(frame{op: 0xE}), code: 1002, event: wssafe.EventProtocolError},
		{group: "4 opcodes", name: "reserved control opcode 0xF", send: frames(textFrame("ok"), frame{op: 0xF}), code: 1002, messages: []string{"ok"}, event: wssafe.EventProtocolError},
		{group: "4 opcodes", name: "binary on a text-only endpoint", opts: func(o *wssafe.Options) { o.Accept = []wssafe.MessageType{wssafe.MessageText} },
			send: frames(binFrame([]byte{1})), code: 1003, event: wssafe.EventUnsupportedType},

		// 5.x fragmentation
		{group: "5 fragmentation", name: "text in three fragments", send: frames(
			frame{op: opText, data: []byte("fr"), more: true}, frame{op: opCont, data: []byte("ag"), more: true}, frame{op: opCont, data: []byte("ment")}, closeFrame(1000, "")),
			code: 1000, messages: []string{"fragment"}},
		{group: "5 fragmentation", name: "ping between fragments", send: frames(
			frame{op: opText, data: []byte("a"), more: true}, frame{op: opPing, data: []byte("mid")}, frame{op: opCont, data: []byte("b")}, closeFrame(1000, "")),
			code: 1000, messages: []string{"ab"}, pongs: []string{"mid"}},
		{group: "5 fragmentation", name: "fragmented ping", send: frames(frame{op: opPing, data: []byte("a"), more: true}, frame{op: opCont, data: []byte("b")}), code: 1002, event: wssafe.EventProtocolError},
		{group: "5 fragmentation", name: "fragmented close", send: frames(frame{op: opClose, data: []byte{3, 232}, more: true}, frame{op: opCont}), code: 1002, event: wssafe.EventProtocolError},
		{group: "5 fragmentation", name: "continuation without a start", send: frames(frame{op: opCont, data: []byte("x")}), code: 1002, event: wssafe.EventProtocolError},
		{group: "5 fragmentation", name: "final continuation without a start", send: frames(frame{op: opCont, data: []byte("x"), more: true}), code: 1002, event: wssafe.EventProtocolError},
		{group: "5 fragmentation", name: "new text inside a fragmented message", send: frames(frame{op: opText, data: []byte("a"), more: true}, textFrame("b")), code: 1002, event: wssafe.EventProtocolError},
		{group: "5 fragmentation", name: "new binary inside a fragmented message", send: frames(frame{op: opBinary, data: []byte("a"), more: true}, frame{op: opBinary, data: []byte("b"), more: true}), code: 1002, event: wssafe.EventProtocolError},
		{group: "5 fragmentation", name: "endless empty continuations", opts: withMessageTimeout(300 * time.Millisecond),
			send: repeatEvery(frame{op: opText, more: true}, frame{op: opCont, more: true}, 5*time.Millisecond),
			code: 1008, event: wssafe.EventMessageTimeout, atLeast: 300 * time.Millisecond, bound: 300*time.Millisecond + defaultBound},
		{group: "5 fragmentation", name: "message started and never finished", opts: withMessageTimeout(300 * time.Millisecond),
			send: frames(frame{op: opBinary, data: []byte("a"), more: true}),
			code: 1008, event: wssafe.EventMessageTimeout, atLeast: 300 * time.Millisecond, bound: 300*time.Millisecond + defaultBound},
		{group: "5 fragmentation", name: "frame header announced, payload never sent", opts: withMessageTimeout(300 * time.Millisecond),
			send: frames(frame{op: opBinary, length: lenOf(1000), data: []byte("partial")}),
			code: 1008, event: wssafe.EventMessageTimeout, atLeast: 300 * time.Millisecond, bound: 300*time.Millisecond + defaultBound},

		// 6.x UTF-8 handling
		{group: "6 UTF-8", name: "valid multi-byte text", send: frames(textFrame("κόσμε €𝄞"), closeFrame(1000, "")), code: 1000, messages: []string{"κόσμε €𝄞"}},
		{group: "6 UTF-8", name: "valid runes split across fragments", send: frames(
			frame{op: opText, data: []byte("€")[:1], more: true}, frame{op: opCont, data: []byte("€𝄞")[1:5], more: true}, frame{op: opCont, data: []byte("€𝄞")[5:]}, closeFrame(1000, "")),
			code: 1000, messages: []string{"€𝄞"}},
		{group: "6 UTF-8", name: "valid runes straddling read chunks", opts: withReadLimit(1 << 16), send: frames(textFrame(euro), closeFrame(1000, "")), code: 1000, messages: []string{euro}},
		{group: "6 UTF-8", name: "invalid byte 0xFF", send: frames(frame{op: opText, data: []byte("ok\xffok")}), code: 1007, event: wssafe.EventInvalidUTF8},
		{group: "6 UTF-8", name: "overlong encoding of '/'", send: frames(frame{op: opText, data: []byte{0xC0, 0xAF}}), code: 1007, event: wssafe.EventInvalidUTF8},
		{group: "6 UTF-8", name: "UTF-16 surrogate", send: frames(frame{op: opText, data: []byte{0xED, 0xA0, 0x80}}), code: 1007, event: wssafe.EventInvalidUTF8},
		{group: "6 UTF-8", name: "code point above U+10FFFF", send: frames(frame{op: opText, data: []byte{0xF4, 0x90, 0x80, 0x80}}), code: 1007, event: wssafe.EventInvalidUTF8},
		{group: "6 UTF-8", name: "truncated rune at the end", send: frames(frame{op: opText, data: []byte("ab\xe2\x82")}), code: 1007, event: wssafe.EventInvalidUTF8},
		{group: "6 UTF-8", name: "invalid across fragments", send: frames(
			frame{op: opText, data: []byte("\xce\xba\xe1"), more: true}, frame{op: opCont, data: []byte("\xbd\xf4\x90"), more: true}, frame{op: opCont, data: []byte("\x80\x80")}),
			code: 1007, event: wssafe.EventInvalidUTF8},
		{group: "6 UTF-8", name: "fail fast: invalid fragment of an unfinished message",
			send: frames(frame{op: opText, data: []byte("\xce\xba"), more: true}, frame{op: opCont, data: []byte("\xff"), more: true}),
			code: 1007, event: wssafe.EventInvalidUTF8},
		{group: "6 UTF-8", name: "invalid UTF-8 in binary is fine", send: frames(binFrame([]byte{0xFF, 0xFE}), closeFrame(1000, "")), code: 1000, messages: []string{"\xff\xfe"}},

		// 7.x close handling
		{group: "7 close", name: "close 1000 echoed", send: frames(closeFrame(1000, "bye")), code: 1000},
		{group: "7 close", name: "close without payload", send: frames(frame{op: opClose}), code: 1005},
		{group: "7 close", name: "close 3000 and 4999 are valid", send: frames(closeFrame(4999, "")), code: 4999},
		{group: "7 close", name: "data after close ignored", send: frames(closeFrame(1000, ""), textFrame("late")), code: 1000},
		{group: "7 close", name: "close with 1-byte payload", send: frames(frame{op: opClose, data: []byte{0x03}}), code: 1002, event: wssafe.EventProtocolError},
		{group: "7 close", name: "close code 999", send: frames(closeFrame(999, "")), code: 1002, event: wssafe.EventProtocolError},
		{group: "7 close", name: "close code 1004 (reserved)", send: frames(closeFrame(1004, "")), code: 1002, event: wssafe.EventProtocolError},
		{group: "7 close", name: "close code 1005 on the wire", send: frames(closeFrame(1005, "")), code: 1002, event: wssafe.EventProtocolError},
		{group: "7 close", name: "close code 1006 on the wire", send: frames(closeFrame(1006, "")), code: 1002, event: wssafe.EventProtocolError},
		{group: "7 close", name: "close code 1015 on the wire", send: frames(closeFrame(1015, "")), code: 1002, event: wssafe.EventProtocolError},
		{group: "7 close", name: "close code 2999", send: frames(closeFrame(2999, "")), code: 1002, event: wssafe.EventProtocolError},
		{group: "7 close", name: "close code 5000", send: frames(closeFrame(5000, "")), code: 1002, event: wssafe.EventProtocolError},
		{group: "7 close", name: "close reason of 124 bytes (frame > 125)", send: frames(closeFrame(1000, long[:124])), code: 1002, event: wssafe.EventProtocolError},
		// coder/websocket echoes a peer's close before wssafe sees it, so an
		// invalid reason comes back to its sender instead of failing with
		// 1007 (Autobahn 7.5.1 "non-strict"); it reaches no log and no callback.
		{group: "7 close", name: "invalid UTF-8 in the close reason", send: frames(closeFrame(1000, "\xff\xfe")), code: 1000},

		// 9.x limits
		{group: "9 limits", name: "oversized single frame", opts: withReadLimit(1024), send: frames(binFrame(make([]byte, 4096))), code: 1009, event: wssafe.EventMessageTooBig},
		{group: "9 limits", name: "oversized declared length, 2^62", opts: withReadLimit(1024),
			send: frames(frame{op: opBinary, length: lenOf(1 << 62), data: make([]byte, 2048)}), code: 1009, event: wssafe.EventMessageTooBig},
		{group: "9 limits", name: "oversized fragmented message", opts: withReadLimit(1024),
			send: frames(append(repeatFrame(frame{op: opCont, data: make([]byte, 200), more: true}, 10), frame{op: opCont})...).after(frame{op: opText, data: []byte("x"), more: true}),
			code: 1009, event: wssafe.EventMessageTooBig},
		{group: "9 limits", name: "message at the read limit", opts: withReadLimit(1024), send: frames(binFrame(make([]byte, 1024)), closeFrame(1000, "")), code: 1000, messages: []string{string(make([]byte, 1024))}},
		{group: "9 limits", name: "idle session", opts: func(o *wssafe.Options) { o.IdleTimeout = 300 * time.Millisecond },
			send: frames(), code: 3008, event: wssafe.EventIdleTimeout, alone: true, atLeast: 200 * time.Millisecond, bound: 300*time.Millisecond + defaultBound},
	}
}

// after returns a sender that writes f before s's frames.
func (s sender) after(f frame) sender {
	return func(stop <-chan struct{}, w io.Writer) {
		if _, err := w.Write(f.bytes()); err != nil {
			return
		}
		s(stop, w)
	}
}

func repeatFrame(f frame, n int) []frame {
	fs := make([]frame, n)
	for i := range fs {
		fs[i] = f
	}
	return fs
}

func withReadLimit(n int64) func(*wssafe.Options) {
	return func(o *wssafe.Options) { o.ReadLimit = n }
}

func withMessageTimeout(d time.Duration) func(*wssafe.Options) {
	return func(o *wssafe.Options) { o.MessageTimeout = d }
}

func withKeepalive(interval, timeout time.Duration) func(*wssafe.Options) {
	return func(o *wssafe.Options) { o.PingInterval, o.PongTimeout = interval, timeout }
}

func TestHostileFrames(t *testing.T) {
	t.Parallel()
	for _, row := range append(hostileRows(), stallRows()...) {
		t.Run(row.group+"/"+row.name, func(t *testing.T) {
			t.Parallel()
			logger, logs := newLogger()
			opts := &wssafe.Options{Logger: logger}
			if row.opts != nil {
				row.opts(opts)
			}
			_, url := server(t, mirrorHandler, opts)
			var bystander *websocket.Conn
			if !row.alone {
				bystander = dial(t, url, nil)
			}
			bound := row.bound
			if bound == 0 {
				bound = defaultBound
			}

			out := hostileDial(t, url).play(row.send, bound)

			require.Equal(t, row.code, out.code, "close code (reason %q)", out.reason)
			assert.LessOrEqual(t, out.elapsed, bound, "the server took too long to answer")
			assert.GreaterOrEqual(t, out.elapsed, row.atLeast, "the server closed before its timer")
			assert.Equal(t, row.messages, out.messages, "echoed messages")
			if row.pongs != nil {
				assert.Equal(t, row.pongs, out.pongs, "pongs")
			}
			if row.maxPongs > 0 {
				assert.LessOrEqual(t, len(out.pongs), row.maxPongs, "pongs answered during a flood")
			}
			if row.event != "" {
				assert.Eventually(t, func() bool { return strings.Contains(logs.String(), `"event":"`+row.event+`"`) },
					5*time.Second, 10*time.Millisecond, "log event %s", row.event)
			}
			if bystander != nil {
				assertAlive(t, bystander)
			}
		})
	}
}

// assertAlive checks that a session still echoes.
func assertAlive(t *testing.T, c *websocket.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte("still here")))
	_, got, err := c.Read(ctx)
	require.NoError(t, err, "a bystander session was affected")
	assert.Equal(t, "still here", string(got))
}

// TestHostileHandshakes covers requests that must be refused before any
// WebSocket exists.
func TestHostileHandshakes(t *testing.T) {
	t.Parallel()
	rows := []struct {
		name   string
		method string
		hdr    map[string]string
		status int
	}{
		{"cross-origin browser", http.MethodGet, map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		{"origin that is not a URL", http.MethodGet, map[string]string{"Origin": "::not a url"}, http.StatusForbidden},
		{"missing Sec-WebSocket-Key", http.MethodGet, map[string]string{"Sec-WebSocket-Key": ""}, http.StatusBadRequest},
		{"short Sec-WebSocket-Key", http.MethodGet, map[string]string{"Sec-WebSocket-Key": "c2hvcnQ="}, http.StatusBadRequest},
		{"version 8", http.MethodGet, map[string]string{"Sec-WebSocket-Version": "8"}, http.StatusBadRequest},
		{"no Upgrade header", http.MethodGet, map[string]string{"Upgrade": ""}, http.StatusUpgradeRequired},
		{"no Connection: Upgrade", http.MethodGet, map[string]string{"Connection": "keep-alive"}, http.StatusUpgradeRequired},
		{"POST", http.MethodPost, nil, http.StatusMethodNotAllowed},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			t.Parallel()
			logger, logs := newLogger()
			_, url := server(t, mirrorHandler, &wssafe.Options{Logger: logger})
			start := time.Now()
			c, _ := hostileRequest(t, url, row.method, row.hdr)
			c.nc.SetReadDeadline(start.Add(defaultBound))
			resp, err := http.ReadResponse(c.br, nil)
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, row.status, resp.StatusCode)
			assert.Less(t, time.Since(start), defaultBound)
			if row.status == http.StatusForbidden {
				assert.Contains(t, logs.String(), `"event":"`+wssafe.EventOriginRefused+`"`)
			}
		})
	}
}

// TestHostileStalledHandshake is a client that never finishes its handshake
// request (slowloris). The defence is the http.Server's ReadHeaderTimeout,
// which every example sets; the Endpoint never sees the request.
func TestHostileStalledHandshake(t *testing.T) {
	t.Parallel()
	logger, _ := newLogger()
	ep, err := wssafe.New(mirrorHandler, &wssafe.Options{Logger: logger})
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(ep)
	srv.Config.ReadHeaderTimeout = 300 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)

	start := time.Now() // before the server's accept starts its clock
	nc, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	defer nc.Close()
	_, err = nc.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"))
	require.NoError(t, err)
	nc.SetReadDeadline(start.Add(defaultBound + time.Second))
	_, err = io.ReadAll(nc)
	require.NoError(t, err, "the server must close the stalled connection")
	elapsed := time.Since(start)
	assert.GreaterOrEqual(t, elapsed, 300*time.Millisecond)
	assert.Less(t, elapsed, 300*time.Millisecond+defaultBound)
}

// exchange writes b and returns the first data message the server sends.
func (c *hostileConn) exchange(t *testing.T, b []byte) string {
	t.Helper()
	_, err := c.nc.Write(b)
	require.NoError(t, err)
	c.nc.SetReadDeadline(time.Now().Add(defaultBound))
	defer c.nc.SetReadDeadline(time.Time{})
	op, _, p, err := c.readFrame()
	require.NoError(t, err)
	require.Contains(t, []byte{opText, opBinary}, op)
	return string(p)
}
