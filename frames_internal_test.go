package wssafe

import (
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// wireFrame builds a frame header (and a zero payload) as a client sends it.
func wireFrame(op byte, n int, masked bool) []byte {
	b := []byte{0x80 | op}
	var m byte
	if masked {
		m = 0x80
	}
	switch {
	case n < 126:
		b = append(b, m|byte(n))
	case n <= 0xFFFF:
		b = append(b, m|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, m|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if masked {
		b = append(b, 1, 2, 3, 4)
	}
	return append(b, make([]byte, n)...)
}

// The scan knows, after any prefix of a stream of frames, whether it ends
// inside a frame, and which frame that is.
func TestFrameScanBoundaries(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{0, 1, 125, 126, 200, 65535, 65536, 70000}
	var stream []byte
	var ends []int // offset just past each frame
	for range 60 {
		op := byte(0x2)
		if rng.IntN(3) == 0 {
			op = 0x9
		}
		f := wireFrame(op, sizes[rng.IntN(len(sizes))], rng.IntN(4) != 0)
		stream = append(stream, f...)
		ends = append(ends, len(stream))
	}
	for _, chunk := range []int{1, 2, 3, 7, 1000, 4096, 100000} {
		var f frameScan
		frame := 0 // index of the frame the next byte belongs to
		for off := 0; off < len(stream); {
			n := min(chunk, len(stream)-off)
			f.feed(stream[off : off+n])
			off += n
			for frame < len(ends) && ends[frame] <= off {
				frame++
			}
			inside := frame < len(ends) && off > startOf(ends, frame)
			if inside {
				require.Equal(t, uint64(frame+1), f.current(), "chunk %d, offset %d", chunk, off)
			} else {
				require.Zero(t, f.current(), "chunk %d, offset %d: between frames", chunk, off)
			}
		}
	}
}

func startOf(ends []int, i int) int {
	if i == 0 {
		return 0
	}
	return ends[i-1]
}

// scriptConn is a net.Conn whose reads return the scripted chunks, and
// which records the read deadlines set on it.
type scriptConn struct {
	net.Conn // nil: only the methods below are called
	reads    [][]byte
	errs     []error // returned with the read of the same index, if set
	n        int
	set      []time.Time
}

func (c *scriptConn) Read(p []byte) (int, error) {
	if c.n == len(c.reads) {
		return 0, io.EOF
	}
	k := copy(p, c.reads[c.n])
	var err error
	if c.n < len(c.errs) {
		err = c.errs[c.n]
	}
	c.n++
	return k, err
}

func (c *scriptConn) SetReadDeadline(t time.Time) error {
	c.set = append(c.set, t)
	return nil
}

func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

func TestFrameDeadlineCostsNothingForWholeFrames(t *testing.T) {
	t.Parallel()
	text := wireFrame(0x1, 5, true)
	sc := &scriptConn{reads: [][]byte{text, append(text, text...)}}
	dc := newDeadlineConn(sc, 10*time.Second, nil, nil)
	buf := make([]byte, 4096)
	for range 2 {
		_, err := dc.Read(buf)
		require.NoError(t, err)
		dc.beginMessage()
		dc.endMessage()
	}
	assert.Empty(t, sc.set, "frames that arrive whole never touch the timer")
}

func TestFrameDeadlineArmedForAStartedFrame(t *testing.T) {
	t.Parallel()
	ping := wireFrame(0x9, 125, true)
	text := wireFrame(0x1, 5, true)
	sc := &scriptConn{reads: [][]byte{ping[:1], ping[1:20], ping[20:], text}}
	dc := newDeadlineConn(sc, 10*time.Second, nil, nil)
	buf := make([]byte, 4096)
	read := func() {
		t.Helper()
		_, err := dc.Read(buf)
		require.NoError(t, err)
	}

	read() // one header byte: nothing armed yet
	assert.Empty(t, sc.set)
	read() // the frame needs another read: armed
	require.Len(t, sc.set, 1)
	left := time.Until(sc.set[0])
	assert.LessOrEqual(t, left, maxControlStall, "a control frame gets at most 4 s, before coder/websocket's 5 s")
	assert.Greater(t, left, maxControlStall-time.Second)
	read() // the same frame: the deadline stays
	assert.Len(t, sc.set, 1)
	read() // between frames again: cleared
	require.Len(t, sc.set, 2)
	assert.True(t, sc.set[1].IsZero(), "no read deadline between frames")
}

func TestFrameDeadlineNeverExtendsTheMessage(t *testing.T) {
	t.Parallel()
	first := wireFrame(0x1, 3, true)
	first[0] &^= 0x80 // not final
	cont := wireFrame(0x0, 100, true)
	sc := &scriptConn{reads: [][]byte{first, cont[:10], cont[10:50], cont[50:], wireFrame(0x1, 1, true)}}
	dc := newDeadlineConn(sc, time.Second, nil, nil)
	buf := make([]byte, 4096)
	_, err := dc.Read(buf)
	require.NoError(t, err)
	dc.beginMessage()
	for range 3 {
		_, err = dc.Read(buf)
		require.NoError(t, err)
	}
	// Armed once, for the message; the continuation frame that started
	// later did not move it.
	require.Len(t, sc.set, 1)
	dc.endMessage()
	// The next read clears it: the message and its last frame have ended.
	_, err = dc.Read(buf)
	require.NoError(t, err)
	require.Len(t, sc.set, 2)
	assert.True(t, sc.set[1].IsZero())
}

func TestReadAfterMidFrameTimeoutFails(t *testing.T) {
	t.Parallel()
	text := wireFrame(0x1, 50, true)
	sc := &scriptConn{reads: [][]byte{text[:10], nil, text[10:]}, errs: []error{nil, os.ErrDeadlineExceeded}}
	dc := newDeadlineConn(sc, time.Second, nil, nil)
	buf := make([]byte, 4096)
	_, err := dc.Read(buf)
	require.NoError(t, err)
	_, err = dc.Read(buf)
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	_, err = dc.Read(buf)
	require.ErrorIs(t, err, os.ErrDeadlineExceeded, "the stream is lost mid-frame: no read may parse it")
	assert.Equal(t, 2, sc.n, "the socket is not read again")
}

func TestLimitCapsEveryDeadline(t *testing.T) {
	t.Parallel()
	rec := &deadlineRecorder{}
	ticks := newQuarterTicker(time.Hour, NewFakeClock(time.Now())) // never ticks by itself
	dc := newDeadlineConn(rec, 0, ticks, nil)
	limit := time.Now().Add(time.Second)
	dc.limitBy(limit)
	assert.Equal(t, limit.UnixNano(), rec.last.Load(), "the write deadline in force is brought forward")
	ticks.count.Add(1)
	_, err := dc.Write([]byte("x"))
	require.NoError(t, err)
	assert.Equal(t, limit.UnixNano(), rec.last.Load(), "the lazy renewal does not push the limit out")

	sc := &scriptConn{}
	rd := newDeadlineConn(sc, 10*time.Second, nil, nil)
	rd.limitBy(limit)
	rd.setIdle(time.Now().Add(time.Hour))
	rd.closeRead(time.Time{})
	for _, d := range sc.set {
		assert.False(t, d.IsZero() || d.After(limit), "read deadline %v past the limit", d)
	}
}

func (c *deadlineRecorder) SetReadDeadline(time.Time) error { return nil }

// repeatConn is a net.Conn whose every read returns the same bytes.
type repeatConn struct {
	net.Conn // nil: only Read is called
	b        []byte
}

func (c repeatConn) Read(p []byte) (int, error) { return copy(p, c.b), nil }

// BenchmarkDeadlineConnRead is the read path's cost per socket read of
// whole frames (the common case): the frame scan, and no deadline touched.
func BenchmarkDeadlineConnRead(b *testing.B) {
	for _, size := range []int{64, 1024} {
		frame := wireFrame(0x1, size, true)
		for _, mt := range []time.Duration{-1, 10 * time.Second} {
			name := "size=" + strconv.Itoa(size) + "/frame-scan=" + strconv.FormatBool(mt > 0)
			b.Run(name, func(b *testing.B) {
				dc := newDeadlineConn(repeatConn{b: frame}, mt, nil, nil)
				buf := make([]byte, len(frame))
				b.ReportAllocs()
				b.SetBytes(int64(len(frame)))
				for b.Loop() {
					dc.Read(buf)
				}
			})
		}
	}
}
