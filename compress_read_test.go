package wssafe_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe"
)

// The read side of compression where the transport and coder/websocket's
// inflater meet: a peer that vanishes or stalls inside a compressed
// message, bytes after a final deflate block, and messages pipelined past
// them. Each runs beside a compressed bystander session.

// storedBlock is a deflate stored block of p, not final: it inflates to p
// whatever precedes it, byte-aligned.
func storedBlock(p []byte) []byte {
	b := []byte{0x00}
	b = binary.LittleEndian.AppendUint16(b, uint16(len(p)))
	b = binary.LittleEndian.AppendUint16(b, ^uint16(len(p)))
	return append(b, p...)
}

// zeroKey masks nothing, so that the bytes of a payload are on the wire as
// they are.
var zeroKey = &[4]byte{}

// A peer that vanishes inside a compressed message, wherever the cut
// falls, ends its session as 1006, logged below Warn and blamed on no
// one: coder's inflater would read the cut frame's still-masked bytes, or
// be told the stream ended cleanly, and call it invalid data (1007).
func TestCompressedPeerVanishesMidMessage(t *testing.T) {
	t.Parallel()
	wire := deflated(realJSON(6000))
	require.Greater(t, len(wire), 600)
	whole := frame{op: opText, rsv: rsv1, data: wire[:300], more: true}.bytes()
	for _, row := range []struct {
		name  string
		sent  []byte
		reset bool // a TCP reset rather than a FIN
	}{
		{"inside a final frame's payload", cut(frame{op: opText, rsv: rsv1, data: wire}, 8+300), false},
		{"inside a first fragment's payload", cut(frame{op: opText, rsv: rsv1, data: wire, more: true}, 8+300), false},
		{"between fragments", whole, false},
		{"inside a continuation's payload", append(whole, cut(frame{op: opCont, data: wire[300:]}, 8+100)...), false},
		{"reset inside a final frame's payload", cut(frame{op: opText, rsv: rsv1, data: wire}, 8+300), true},
	} {
		t.Run(row.name, func(t *testing.T) {
			t.Parallel()
			logger, logs := newLogger()
			ended := make(chan error, 2) // the bystander's too, at the end
			ep, url := server(t, mirrorHandler, &wssafe.Options{Logger: logger, Compression: true, PingInterval: -1,
				OnClose: func(_ *wssafe.Session, err error) { ended <- err }})
			bystander, _ := dialDeflate(t, url, websocket.CompressionNoContextTakeover)
			c := dialDeflateRaw(t, url, offerNoContext)
			// A first message echoed proves the session reads; the cut
			// message follows in the same write.
			got := c.exchange(t, append(textFrame("first").bytes(), row.sent...))
			require.Equal(t, "first", got)
			if row.reset {
				reset(t, c.hostileConn)
			} else {
				require.NoError(t, c.nc.(*net.TCPConn).CloseWrite())
			}
			select {
			case <-ended:
			case <-time.After(defaultBound):
				t.Fatal("the session did not end")
			}
			require.Eventually(t, func() bool { return ep.Stats().Closed[websocket.StatusAbnormalClosure] == 1 },
				defaultBound, 5*time.Millisecond, "counted as 1006: %v", ep.Stats().Closed)
			assert.Len(t, ep.Stats().Closed, 1, "counted once, as 1006 only")
			assert.Empty(t, ep.Stats().ValidationFailures)
			waitForLog(t, logs, `"code":1006`)
			assert.NotContains(t, logs.String(), `"level":"WARN"`)
			assert.NotContains(t, logs.String(), wssafe.EventInvalidCompressed)
			assertAlive(t, bystander)
		})
	}
}

// A compressed frame stalled inside its payload closes 1008 "message
// timeout" at MessageTimeout, as a plain frame's stall does, whether it
// is the message's final frame or its first fragment: the partial bytes
// are never inflated as if the stream had ended.
func TestCompressedStallIsMessageTimeout(t *testing.T) {
	t.Parallel()
	const mt = 300 * time.Millisecond
	wire := deflated(realJSON(6000))
	for _, row := range []struct {
		name string
		f    frame
	}{
		{"final frame", frame{op: opText, rsv: rsv1, data: wire}},
		{"first fragment", frame{op: opText, rsv: rsv1, data: wire, more: true}},
		{"binary final frame", frame{op: opBinary, rsv: rsv1, data: wire}},
	} {
		t.Run(row.name, func(t *testing.T) {
			t.Parallel()
			logger, logs := newRecorder()
			ep, url := server(t, mirrorHandler, &wssafe.Options{Logger: logger, Compression: true, MessageTimeout: mt})
			bystander, _ := dialDeflate(t, url, websocket.CompressionNoContextTakeover)
			c := dialDeflateRaw(t, url, offerNoContext)
			start := time.Now()
			sendPrefix(t, c.hostileConn, row.f, 300)
			out := c.closed(t) // waits for the close frame, at most defaultBound
			assert.Equal(t, 1008, out.code, "close code (reason %q)", out.reason)
			assert.Equal(t, "message timeout", out.reason)
			assert.GreaterOrEqual(t, time.Since(start), mt, "closed before MessageTimeout")
			require.Eventually(t, func() bool { return ep.Stats().Closed[wssafe.StatusPolicyViolation] == 1 }, 5*time.Second, 10*time.Millisecond)
			assert.Equal(t, 1, logs.count(slog.LevelWarn, wssafe.EventMessageTimeout))
			assert.Zero(t, logs.count(slog.LevelWarn, wssafe.EventInvalidCompressed))
			assert.Zero(t, logs.count(slog.LevelWarn, wssafe.EventInvalidUTF8))
			assert.Empty(t, ep.Stats().ValidationFailures)
			assertAlive(t, bystander)
		})
	}
}

// Bytes after a final deflate block that coder's inflater has already
// taken into its 4 KiB read-ahead (the rest of the frame fits in it) are
// not seen by wssafe: coder keeps that buffer for the session's next
// compressed message, which inflates them first. What SECURITY.md says:
// they are the client's own bytes, spliced into its own next message, and
// ReadLimit and MaxInflationRatio still count what they inflate to.
func TestTrailingAfterFinalBlockSpliced(t *testing.T) {
	t.Parallel()
	// 2 MiB of zeros, not final: a bomb hidden behind a final block.
	hidden := append(zeroBomb(2), 0, 0, 0xff, 0xff)
	require.Less(t, len(hidden), 3<<10, "the hidden bytes fit in coder's read-ahead")
	for _, row := range []struct {
		name     string
		opts     func(*wssafe.Options)
		trailing []byte
		code     int
		event    string
		next     []string // echoed after "hi"
	}{
		{name: "a stored block, spliced into the next message", trailing: storedBlock([]byte("EVIL!")),
			code: 1000, next: []string{"EVIL!second"}},
		{name: "a bomb, counted against ReadLimit in the next message", trailing: hidden,
			code: 1009, event: wssafe.EventMessageTooBig},
		{name: "a bomb, counted against the ratio in the next message", opts: func(o *wssafe.Options) { o.ReadLimit = 16 << 20 },
			trailing: hidden, code: 1009, event: wssafe.EventInflationRatio},
	} {
		t.Run(row.name, func(t *testing.T) {
			t.Parallel()
			logger, logs := newRecorder()
			opts := &wssafe.Options{Logger: logger, Compression: true}
			if row.opts != nil {
				row.opts(opts)
			}
			ep, url := server(t, mirrorHandler, opts)
			bystander, _ := dialDeflate(t, url, websocket.CompressionNoContextTakeover)
			c := dialDeflateRaw(t, url, offerNoContext)
			first := frame{op: opText, rsv: rsv1, data: append(deflatedFinal([]byte("hi")), row.trailing...)}
			require.Equal(t, "hi", c.exchange(t, first.bytes()))
			_, err := c.nc.Write(wire(compressedText("second"), closeFrame(1000, "")))
			require.NoError(t, err)
			out := c.closed(t)
			assert.Equal(t, row.code, out.code, "close code (reason %q)", out.reason)
			assert.Equal(t, row.next, out.messages)
			if row.event != "" {
				require.Eventually(t, func() bool { return logs.count(slog.LevelWarn, row.event) == 1 }, 5*time.Second, 10*time.Millisecond)
			} else {
				assert.Zero(t, logs.count(slog.LevelWarn, wssafe.EventInvalidCompressed))
			}
			assert.Empty(t, ep.Stats().ValidationFailures)
			assertAlive(t, bystander)
		})
	}
}

// A final block ends a message as well as a sync flush does (RFC 7692
// section 7.2.3.4), message after message. The RFC's own example puts one
// more octet after its final block; coder/websocket's inflater keeps that
// octet for the session's next compressed message, which then fails with
// 1007: the limit SECURITY.md documents, pinned here so that the
// documentation stays true (and this row changes when coder is fixed).
func TestFinalBlockMessages(t *testing.T) {
	t.Parallel()
	rfcHello := []byte{0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00} // RFC 7692 section 7.2.3.4
	final := func(s string) frame { return frame{op: opText, rsv: rsv1, data: deflatedFinal([]byte(s))} }
	for _, row := range []struct {
		name  string
		first frame
		want  string
		then  []frame
		code  int
		next  []string
	}{
		{name: "final blocks alone", first: final("one"), want: "one",
			then: []frame{final("two"), compressedText("three"), final("four")}, code: 1000, next: []string{"two", "three", "four"}},
		{name: "the RFC's example, twice", first: frame{op: opText, rsv: rsv1, data: rfcHello}, want: "Hello",
			then: []frame{{op: opText, rsv: rsv1, data: rfcHello}}, code: 1007},
	} {
		t.Run(row.name, func(t *testing.T) {
			t.Parallel()
			ep, url := server(t, mirrorHandler, &wssafe.Options{Compression: true, Logger: slog.New(slog.DiscardHandler)})
			c := dialDeflateRaw(t, url, offerNoContext)
			require.Equal(t, row.want, c.exchange(t, row.first.bytes()))
			_, err := c.nc.Write(wire(append(row.then, closeFrame(1000, ""))...))
			require.NoError(t, err)
			out := c.closed(t)
			assert.Equal(t, row.code, out.code, "close code (reason %q)", out.reason)
			assert.Equal(t, row.next, out.messages)
			if row.code == 1007 {
				assert.Equal(t, "invalid compressed data", out.reason)
				require.Eventually(t, func() bool { return ep.Stats().ValidationFailures[wssafe.EventInvalidCompressed] == 1 },
					5*time.Second, 10*time.Millisecond)
			}
		})
	}
}

// wrappedListener hides the *net.TCPConn of each connection, as a TLS or
// PROXY-protocol listener does: coder/websocket then reads through a
// buffer of ReadBufferSize, so the frame scan runs whole messages ahead of
// what coder has consumed.
type wrappedListener struct{ net.Listener }

func (l wrappedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return struct{ net.Conn }{c}, nil
}

// smuggling is a compressed text frame whose deflate stream ends with a
// final block, followed by more than coder's 4 KiB read-ahead of bytes
// that, from where coder stops, read as frames of their own: a text frame
// "smuggled" and a binary frame running to the end of the outer frame.
// A reader that took coder's word for where the message ended would go on
// framing the rest of the payload as coder does, out of step with the
// frame scan.
func smuggling() frame {
	p := deflatedFinal([]byte("hi"))
	p = append(p, make([]byte, 4096-len(p))...) // coder's inflater reads 4 KiB at a time
	p = append(p, textFrame("smuggled").bytes()...)
	rest := 2000
	p = append(p, frame{op: opBinary, data: make([]byte, rest-8), key: zeroKey}.bytes()...)
	return frame{op: opText, rsv: rsv1, data: p, key: zeroKey}
}

// Data after a final block, past coder's read-ahead, closes 1007 even when
// later messages are already buffered behind it (several whole messages in
// one read): the scan keeps where each of them ends, and more than its
// ring holds are found again from the last end it kept. Nothing of the
// smuggled frames reaches the handler.
func TestDataAfterFinalBlockPipelined(t *testing.T) {
	t.Parallel()
	tiny := func(n int) []frame {
		var fs []frame
		for i := range n {
			fs = append(fs, compressedText(fmt.Sprint(i)))
		}
		return fs
	}
	names := func(n int) []string {
		var s []string
		for i := range n {
			s = append(s, fmt.Sprint(i))
		}
		return s
	}
	for _, row := range []struct {
		name     string
		before   int  // tiny compressed messages ahead of the bad one, in the same write
		bad      bool // the message with data after its final block
		code     int
		messages []string
	}{
		{name: "the bad message, then a second", bad: true, code: 1007},
		{name: "10 messages, the bad one, a second", before: 10, bad: true, code: 1007, messages: names(10)},
		{name: "40 messages (past the ring), the bad one, a second", before: 40, bad: true, code: 1007, messages: names(40)},
		{name: "300 messages, the bad one, a second", before: 300, bad: true, code: 1007, messages: names(300)},
		{name: "300 messages and no bad one", before: 300, code: 1000, messages: append(names(300), "second")},
	} {
		t.Run(row.name, func(t *testing.T) {
			t.Parallel()
			logger, logs := newRecorder()
			ep, err := wssafe.New(mirrorHandler, &wssafe.Options{Logger: logger, Compression: true, ReadBufferSize: 64 << 10})
			require.NoError(t, err)
			url := serveOn(t, ep, func(l net.Listener) net.Listener { return wrappedListener{l} })
			bystander, _ := dialDeflate(t, url, websocket.CompressionNoContextTakeover)
			c := dialDeflateRaw(t, url, offerNoContext)
			fs := tiny(row.before)
			if row.bad {
				fs = append(fs, smuggling())
			}
			fs = append(fs, compressedText("second"), closeFrame(1000, ""))
			var b bytes.Buffer
			for _, f := range fs {
				b.Write(f.bytes())
			}
			_, err = c.nc.Write(b.Bytes())
			require.NoError(t, err)
			out := c.closed(t)
			assert.Equal(t, row.code, out.code, "close code (reason %q)", out.reason)
			assert.Equal(t, row.messages, out.messages)
			if row.bad {
				assert.Equal(t, "invalid compressed data", out.reason)
				require.Eventually(t, func() bool { return logs.count(slog.LevelWarn, wssafe.EventInvalidCompressed) == 1 }, 5*time.Second, 10*time.Millisecond)
				assert.Equal(t, uint64(1), ep.Stats().ValidationFailures[wssafe.EventInvalidCompressed])
			} else {
				assert.Empty(t, ep.Stats().ValidationFailures)
			}
			assertAlive(t, bystander)
		})
	}
}
