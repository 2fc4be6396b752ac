package wssafe_test

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
)

// The clients of the compression tests: coder/websocket's, which inflates,
// and a raw one (a hostileConn, see hostile_test.go) that offers
// permessage-deflate (RFC 7692) by hand, sends hand-built compressed
// frames, and reads the server's frames with their RSV1 bit, inflating
// them itself.

// The raw clients' offers: without context takeover in either direction,
// and with it where the server allows it.
const (
	offerNoContext = "permessage-deflate; client_no_context_takeover; server_no_context_takeover"
	offerTakeover  = "permessage-deflate"
)

// syncTail ends every sync flush; permessage-deflate strips it from a
// message and the receiver puts it back (RFC 7692 section 7.2.1).
const syncTail = "\x00\x00\xff\xff"

// dialDeflate dials with permessage-deflate offered in mode and returns the
// connection and the extension the server answered with.
func dialDeflate(t *testing.T, url string, mode websocket.CompressionMode) (*websocket.Conn, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{CompressionMode: mode})
	require.NoError(t, err)
	t.Cleanup(func() { c.CloseNow() })
	return c, resp.Header.Get("Sec-WebSocket-Extensions")
}

// deflateClient is a raw client whose handshake offered an extension.
type deflateClient struct {
	*hostileConn
	t   *testing.T
	ext string // the extension the server answered with
}

// dialDeflateRaw completes a handshake offering offer ("" offers nothing)
// on a raw connection, checked as hostileUpgraded checks it.
func dialDeflateRaw(t *testing.T, wsURL, offer string) *deflateClient {
	t.Helper()
	c, key := hostileRequest(t, wsURL, http.MethodGet, map[string]string{"Sec-WebSocket-Extensions": offer})
	c = hostileUpgraded(t, c, key)
	return &deflateClient{hostileConn: c, t: t, ext: c.ext}
}

// deflatedAt compresses p at level as one permessage-deflate message: a
// sync flush with its tail stripped.
func deflatedAt(level int, p []byte) []byte {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, level)
	w.Write(p)
	w.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte(syncTail))
}

// deflated is p compressed as one message at the best compression.
func deflated(p []byte) []byte { return deflatedAt(flate.BestCompression, p) }

// deflatedFinal compresses p into a stream that ends with a final block.
func deflatedFinal(p []byte) []byte {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestCompression)
	w.Write(p)
	w.Close()
	return b.Bytes()
}

// compressedText is a compressed text frame of s.
func compressedText(s string) frame {
	return frame{op: opText, rsv: rsv1, data: deflated([]byte(s))}
}

// inflateWithTail inflates one message's payload with a fresh reader, its
// tail put back; a sync-flushed message, which has no final block, ends
// with io.ErrUnexpectedEOF where its data does.
func inflateWithTail(p []byte) ([]byte, error) {
	return io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(p), strings.NewReader(syncTail))))
}

// inflateAlone inflates one message's payload on its own, as a peer
// without context takeover does: a fresh reader, the tail put back.
func inflateAlone(t *testing.T, p []byte) []byte {
	t.Helper()
	require.False(t, bytes.HasSuffix(p, []byte(syncTail)), "the RFC 7692 tail is stripped")
	out, err := inflateWithTail(p)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF, "a sync-flushed stream has no final block: it ends where the data does")
	return out
}

// tryInflateAlone is inflateAlone that reports failure instead of failing.
func tryInflateAlone(p []byte) ([]byte, error) {
	out, err := inflateWithTail(p)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = nil
	}
	return out, err
}

// inflateStream inflates the payloads of the compressed messages of one
// context-takeover stream in order with one reader, as the peer does: each
// message's tail put back, and its inflated length known from want.
func inflateStream(t *testing.T, payloads [][]byte, want [][]byte) {
	t.Helper()
	var all []byte
	for _, p := range payloads {
		require.False(t, bytes.HasSuffix(p, []byte(syncTail)), "the RFC 7692 tail is stripped")
		all = append(append(all, p...), syncTail...)
	}
	fr := flate.NewReader(bytes.NewReader(all))
	for i, w := range want {
		got := make([]byte, len(w))
		_, err := io.ReadFull(fr, got)
		require.NoError(t, err, "message %d", i)
		require.Equal(t, w, got, "message %d", i)
	}
}

// readSentFrame reads one frame of the server's: its first byte (FIN, the
// RSV bits and the opcode), whether it came masked, and its payload, which
// may be at most limit bytes.
func readSentFrame(br *bufio.Reader, limit uint64) (b0 byte, masked bool, payload []byte, err error) {
	var h [2]byte
	if _, err = io.ReadFull(br, h[:]); err != nil {
		return 0, false, nil, err
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var b [2]byte
		_, err = io.ReadFull(br, b[:])
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		_, err = io.ReadFull(br, b[:])
		n = binary.BigEndian.Uint64(b[:])
	}
	if err != nil {
		return 0, false, nil, err
	}
	if n > limit {
		return 0, false, nil, fmt.Errorf("%w: %d bytes, more than %d", errFrameTooBig, n, limit)
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(br, payload)
	return h[0], h[1]&0x80 != 0, payload, err
}

// errFrameTooBig is readSentFrame's error for a frame past its limit.
var errFrameTooBig = errors.New("server frame too big")

// rsvMessage is one message read by hand: its first frame's RSV1, its
// frames, and its payload as sent (still deflated if RSV1 is set).
type rsvMessage struct {
	rsv1    bool
	frames  int
	payload []byte
}

// command sends cmd and reads the message it answers with.
func (c *deflateClient) command(cmd string) rsvMessage {
	c.t.Helper()
	_, err := c.nc.Write(textFrame(cmd).bytes())
	require.NoError(c.t, err)
	return c.message()
}

// message reads one data message frame by frame, checking RSV2 and RSV3
// are clear and RSV1 is never set on a continuation frame.
func (c *deflateClient) message() rsvMessage {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var m rsvMessage
	for {
		b0, masked, p, err := readSentFrame(c.br, 1<<20)
		require.NoError(c.t, err)
		require.False(c.t, masked, "a server frame is not masked")
		require.Zero(c.t, b0&(rsv2|rsv3), "RSV2 and RSV3 stay clear")
		op := b0 & 0x0F
		require.NotEqual(c.t, byte(opPing), op, "no ping expected in these tests")
		if m.frames == 0 {
			m.rsv1 = b0&rsv1 != 0
		} else {
			require.Equal(c.t, byte(opCont), op)
			require.Zero(c.t, b0&rsv1, "RSV1 only on a message's first frame")
		}
		m.frames++
		m.payload = append(m.payload, p...)
		if b0&0x80 != 0 {
			return m
		}
	}
}

// readDeflated is readUntilClose for a session that may answer with
// compressed messages: it inflates those with RSV1 on their first frame.
// A connection that ends, even inside a frame, is code -1; another
// transport error (the deadline passed), code 0; a frame of more than
// 4 MiB, an error.
func (c *hostileConn) readDeflated(start time.Time, limit time.Duration) (outcome, error) {
	c.nc.SetReadDeadline(start.Add(limit))
	var out outcome
	var msg []byte
	compressed := false
	for {
		b0, _, p, err := readSentFrame(c.br, 4<<20)
		if errors.Is(err, errFrameTooBig) {
			return out, err
		}
		if err != nil {
			out.elapsed = time.Since(start)
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
				out.code = -1
			}
			return out, nil
		}
		op, fin := b0&0x0F, b0&0x80 != 0
		switch op {
		case opClose:
			out.elapsed = time.Since(start)
			out.code = 1005
			if len(p) >= 2 {
				out.code, out.reason = int(binary.BigEndian.Uint16(p)), string(p[2:])
			}
			return out, nil
		case opText, opBinary, opCont:
			if op != opCont {
				compressed = b0&rsv1 != 0
			}
			msg = append(msg, p...)
			if !fin {
				continue
			}
			if compressed {
				b, err := inflateWithTail(msg)
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					return out, fmt.Errorf("the server's compressed message does not inflate: %v", err)
				}
				msg = b
			}
			out.messages = append(out.messages, string(msg))
			msg = nil
		}
	}
}

// closed reads the server's messages up to its close frame and answers
// it, so that the session ends at once.
func (c *hostileConn) closed(t *testing.T) outcome {
	t.Helper()
	out, err := c.readDeflated(time.Now(), defaultBound)
	require.NoError(t, err)
	c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	c.nc.Write(closeFrame(1000, "").bytes()) // may fail: the server need not wait
	c.nc.Close()                             // a sender of a partial frame never finishes it
	return out
}

// sendPrefix writes the header of a frame of f's full length and only the
// first n bytes of its payload: a server that answers has not waited for
// the rest.
func sendPrefix(t *testing.T, c *hostileConn, f frame, n int) {
	t.Helper()
	b := f.bytes()
	head := len(b) - len(f.data)
	_, err := c.nc.Write(b[:head+n])
	require.NoError(t, err)
}
