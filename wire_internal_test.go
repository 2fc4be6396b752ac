package wssafe

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// wireRecorder is a net.Conn that keeps every Write, and fails them once
// failAfter bytes have gone through (0: never), writing the part before.
type wireRecorder struct {
	net.Conn  // nil: only the methods below are called
	mu        sync.Mutex
	writes    [][]byte
	written   int
	failAfter int
	closed    bool
}

func (c *wireRecorder) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	if c.failAfter > 0 && c.written+len(p) > c.failAfter {
		n := c.failAfter - c.written
		c.writes = append(c.writes, bytes.Clone(p[:n]))
		c.written += n
		return n, os.ErrDeadlineExceeded
	}
	c.writes = append(c.writes, bytes.Clone(p))
	c.written += len(p)
	return len(p), nil
}

func (c *wireRecorder) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

func (c *wireRecorder) all() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Join(c.writes, nil)
}

func directConn(rec *wireRecorder) *deadlineConn {
	dc := newDeadlineConn(rec, 0, nil, nil)
	dc.writeDirect()
	return dc
}

// serverClose is the close frame a server writes: unmasked, code and reason.
func serverClose(code StatusCode, reason string) []byte {
	p := []byte{frameFIN | opClose, byte(2 + len(reason))}
	p = binary.BigEndian.AppendUint16(p, uint16(code))
	return append(p, reason...)
}

func TestPutHeaderLengths(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		n    int
		want []byte
	}{
		{0, []byte{0x82, 0}},
		{125, []byte{0x82, 125}},
		{126, []byte{0x82, 126, 0, 126}},
		{65535, []byte{0x82, 126, 0xFF, 0xFF}},
		{65536, []byte{0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0}},
	} {
		var b [maxFrameHeader]byte
		n := putHeader(b[:], 0, byte(MessageBinary), tc.n)
		assert.Equal(t, tc.want, b[:n], "payload of %d bytes", tc.n)
	}
	var b [maxFrameHeader]byte
	putHeader(b[:], 0x40, byte(MessageText), 1)
	assert.Equal(t, byte(0xC1), b[0], "the RSV bits are the caller's")
}

// A write that stops mid-frame breaks the connection: nothing follows it,
// not the next message and not coder/websocket's close frame, which would
// be read as part of the cut frame's payload.
func TestNothingFollowsAFailedWrite(t *testing.T) {
	t.Parallel()
	rec := &wireRecorder{failAfter: 100}
	dc := directConn(rec)
	err := dc.writeMessage(context.Background(), MessageBinary, make([]byte, 1000))
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	assert.Len(t, rec.all(), 100, "the frame was cut short")

	assert.ErrorIs(t, dc.writeMessage(context.Background(), MessageText, []byte("next")), net.ErrClosed)
	rec.mu.Lock()
	rec.failAfter = 0
	rec.mu.Unlock()
	_, err = dc.Write(serverClose(StatusGoingAway, "going away"))
	assert.ErrorIs(t, err, net.ErrClosed)
	assert.Len(t, rec.all(), 100, "nothing was written after the cut frame")
	assert.True(t, rec.closed, "the refused close frame closed the connection")
}

// The same holds when coder/websocket's own write (a ping) is the one cut.
func TestNothingFollowsAFailedControlFrame(t *testing.T) {
	t.Parallel()
	rec := &wireRecorder{failAfter: 1}
	dc := directConn(rec)
	_, err := dc.Write([]byte{0x89, 1, 'p'})
	require.Error(t, err)
	assert.ErrorIs(t, dc.writeMessage(context.Background(), MessageText, []byte("x")), net.ErrClosed)
	dc.dropBroken()
	assert.True(t, rec.closed)
}

// Once coder/websocket has written a close frame, data writes fail.
func TestNoDataAfterTheCloseFrame(t *testing.T) {
	t.Parallel()
	rec := &wireRecorder{}
	dc := directConn(rec)
	require.NoError(t, dc.writeMessage(context.Background(), MessageText, []byte("before")))
	_, err := dc.Write(serverClose(StatusNormalClosure, ""))
	require.NoError(t, err)
	assert.ErrorIs(t, dc.writeMessage(context.Background(), MessageText, []byte("after")), ErrSessionClosed)
	assert.ErrorIs(t, dc.writeFrame(context.Background(), NewPreparedMessage(MessageText, []byte("after")).frame), ErrSessionClosed)
	want := append([]byte{0x81, 6}, "before"...)
	assert.Equal(t, append(want, serverClose(StatusNormalClosure, "")...), rec.all())
}

func TestCoderCloseReasonsReplaced(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		own      bool // wssafe announced this close
		in, want []byte
	}{
		{"1009 read limit", false, serverClose(StatusMessageTooBig, "read limited at 32769 bytes"), serverClose(StatusMessageTooBig, "message too big")},
		{"1002 coder error", false, serverClose(StatusProtocolError, "received fragmented control frame"), serverClose(StatusProtocolError, "protocol error")},
		{"1002 fixed already", false, serverClose(StatusProtocolError, "protocol error"), serverClose(StatusProtocolError, "protocol error")},
		{"1002 of the application", true, serverClose(StatusProtocolError, "custom"), serverClose(StatusProtocolError, "custom")},
		{"an echoed 4000", false, serverClose(4000, "bye"), serverClose(4000, "bye")},
		{"no code", false, []byte{0x88, 0}, []byte{0x88, 0}},
	} {
		rec := &wireRecorder{}
		dc := directConn(rec)
		if tc.own {
			dc.announceClose(StatusProtocolError, "custom")
		}
		n, err := dc.Write(tc.in)
		require.NoError(t, err, tc.name)
		assert.Equal(t, len(tc.in), n, "%s: coder's buffer sees its whole frame written", tc.name)
		assert.Equal(t, [][]byte{tc.want}, rec.writes, tc.name)
	}

	// On coder's own write path too.
	rec := &wireRecorder{}
	dc := newDeadlineConn(rec, 0, nil, nil)
	in := serverClose(StatusMessageTooBig, "read limited at 32769 bytes")
	n, err := dc.Write(in)
	require.NoError(t, err)
	assert.Equal(t, len(in), n)
	assert.Equal(t, serverClose(StatusMessageTooBig, "message too big"), rec.all())
}

// On coder's own write path the wrapper follows the stream's frames
// however coder's buffer cuts them: a close frame whole within a Write is
// fixed wherever it lies in it, bytes of a payload that look like a close
// frame are left alone, and so is a close frame cut across Writes.
func TestFallbackCloseFramesFollowed(t *testing.T) {
	t.Parallel()
	coderClose := serverClose(StatusProtocolError, "received fragmented control frame")
	fixed := serverClose(StatusProtocolError, "protocol error")
	lookalike := append([]byte{0x82, byte(len(coderClose))}, coderClose...) // a binary message holding a close frame's bytes
	big := append(append([]byte{0x82, 126, 0x01, 0x00}, bytes.Repeat([]byte{'a'}, 0x100-len(coderClose))...), coderClose...)
	huge := append(append([]byte{0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0}, bytes.Repeat([]byte{'b'}, 1<<16-len(coderClose))...), coderClose...)
	cat := func(b ...[]byte) []byte { return bytes.Join(b, nil) }
	for _, tc := range []struct {
		name   string
		writes [][]byte
		want   []byte
	}{
		{"alone", [][]byte{coderClose}, fixed},
		{"after a data frame in the same write", [][]byte{cat(lookalike, coderClose)}, cat(lookalike, fixed)},
		{"between frames", [][]byte{cat([]byte{0x89, 0}, coderClose, []byte{0x8A, 0})}, cat([]byte{0x89, 0}, fixed, []byte{0x8A, 0})},
		{"a payload's bytes at the start of a write", [][]byte{lookalike[:2], lookalike[2:]}, lookalike},
		{"a 16-bit length, the payload's end in its own write", [][]byte{big[:100], big[100:], coderClose}, cat(big, fixed)},
		{"a 64-bit length", [][]byte{huge[:5], huge[5 : len(huge)-len(coderClose)], huge[len(huge)-len(coderClose):], coderClose}, cat(huge, fixed)},
		{"a header cut short, then a close", [][]byte{lookalike[:1], cat(lookalike[1:], coderClose)}, cat(lookalike, fixed)},
		{"a close cut across writes", [][]byte{coderClose[:3], coderClose[3:], coderClose}, cat(coderClose, fixed)},
		{"a length near 2^64, which no frame has", [][]byte{cat([]byte{0x88, 0x7F}, bytes.Repeat([]byte{0xFF}, 8), coderClose)}, cat([]byte{0x88, 0x7F}, bytes.Repeat([]byte{0xFF}, 8), coderClose)},
	} {
		rec := &wireRecorder{}
		dc := newDeadlineConn(rec, 0, nil, nil)
		for _, w := range tc.writes {
			n, err := dc.Write(w)
			require.NoError(t, err, tc.name)
			require.Equal(t, len(w), n, tc.name)
		}
		assert.Equal(t, tc.want, rec.all(), tc.name)
	}
}

// A stream of random frames, cut into Writes at random points, comes out
// as it went in except for the reasons of the close frames coder wrote
// whole within one Write.
func TestFallbackFrameTrackRandomStreams(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	coderClose := serverClose(StatusMessageTooBig, "read limited at 32769 bytes")
	fixed := serverClose(StatusMessageTooBig, "message too big")
	for round := range 300 {
		var frames [][]byte
		for range 1 + rng.IntN(8) {
			switch rng.IntN(4) {
			case 0:
				frames = append(frames, coderClose)
			case 1:
				frames = append(frames, []byte{0x89, 0})
			default: // a data frame of any length class, often holding close-frame lookalikes
				n := []int{rng.IntN(126), 126 + rng.IntN(1000), 65536 + rng.IntN(1000)}[rng.IntN(3)]
				payload := bytes.Repeat(coderClose, n/len(coderClose)+1)[:n]
				f := make([]byte, maxFrameHeader)
				f = append(f[:putHeader(f, 0, byte(MessageBinary), n)], payload...)
				frames = append(frames, f)
			}
		}
		stream := bytes.Join(frames, nil)
		var cuts []int
		for i := 0; i < len(stream); i += 1 + rng.IntN(300) {
			cuts = append(cuts, i)
		}
		cuts = append(cuts, len(stream))
		rec := &wireRecorder{}
		dc := newDeadlineConn(rec, 0, nil, nil)
		var want []byte
		start := 0 // where the current frame begins in stream
		for _, f := range frames {
			end := start + len(f)
			whole := false
			for k := 1; k < len(cuts); k++ {
				whole = whole || cuts[k-1] <= start && end <= cuts[k]
			}
			if bytes.Equal(f, coderClose) && whole {
				want = append(want, fixed...)
			} else {
				want = append(want, f...)
			}
			start = end
		}
		for k := 1; k < len(cuts); k++ {
			_, err := dc.Write(stream[cuts[k-1]:cuts[k]])
			require.NoError(t, err)
		}
		require.Equal(t, want, rec.all(), "round %d", round)
	}
}

// Without a writev, a message goes out in one Write up to gatherMax bytes,
// and a batch of frames in as few as fit.
func TestGatherWrites(t *testing.T) {
	t.Parallel()
	rec := &wireRecorder{}
	dc := directConn(rec)
	require.NoError(t, dc.writeMessage(context.Background(), MessageBinary, make([]byte, 16<<10)))
	require.Len(t, rec.writes, 1)
	assert.Len(t, rec.writes[0], 4+16<<10)

	rec.writes = nil
	big := make([]byte, gatherMax)
	require.NoError(t, dc.writeMessage(context.Background(), MessageBinary, big))
	require.Len(t, rec.writes, 2, "header, then the payload larger than the buffer")
	assert.Len(t, rec.writes[0], 10)

	rec.writes = nil
	m := NewPreparedMessage(MessageText, []byte("hi"))
	frames := [][]byte{m.frame, m.frame, m.frame}
	require.NoError(t, dc.writeFrames(context.Background(), frames))
	assert.Equal(t, [][]byte{bytes.Repeat(m.frame, 3)}, rec.writes)
	assert.Equal(t, [][]byte{nil, nil, nil}, frames, "the references are cleared")
}

// A context that ends during a write closes the connection, as
// coder/websocket's Write does, and the write reports the context's error.
func TestWriteContextEnds(t *testing.T) {
	t.Parallel()
	a, b := net.Pipe()
	defer b.Close()
	dc := newDeadlineConn(a, 0, nil, nil)
	dc.writeDirect()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- dc.writeMessage(ctx, MessageText, []byte("never read")) }()
	cancel()
	err := <-done
	assert.ErrorIs(t, err, context.Canceled)
	_, err = a.Write([]byte("x"))
	assert.ErrorIs(t, err, io.ErrClosedPipe, "the connection is closed")
}
