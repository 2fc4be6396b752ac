package wssafe_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe"
)

// A session with context takeover gives its compressor back to the pool
// once it has compressed nothing for wssafe.CompressorIdle, and its next
// message starts a new stream: these tests drive the release with the
// fake clock and check that the client, inflating with one window for the
// whole session, still gets every message intact.

// takeoverSession starts a takeover endpoint on clk (keepalive off, so
// that advancing the clock sends no ping) and returns its URL and a
// channel of its sessions as they open.
func takeoverSession(t *testing.T, clk *wssafe.FakeClock) (string, <-chan *wssafe.Session) {
	t.Helper()
	sessions := make(chan *wssafe.Session, 1)
	opts := takeoverOpts()
	opts.PingInterval = -1
	opts.OnOpen = func(s *wssafe.Session) error {
		sessions <- s
		return nil
	}
	_, url := serverWith(t, writeCommands, opts, wssafe.Hooks{Clock: clk})
	return url, sessions
}

// rawTakeoverSession is takeoverSession with a raw client that offers
// context takeover, has it agreed, and has the compressed answer to
// "write 2000", which it returns with the session: one that now holds a
// compressor.
func rawTakeoverSession(t *testing.T, clk *wssafe.FakeClock) (*deflateClient, *wssafe.Session, rsvMessage) {
	t.Helper()
	url, sessions := takeoverSession(t, clk)
	c := dialDeflateRaw(t, url, offerTakeover)
	require.Equal(t, "permessage-deflate", c.ext)
	m := c.command("write 2000")
	require.True(t, m.rsv1, "write 2000")
	return c, <-sessions, m
}

// idleFor advances clk by the release interval once its compressor is no
// longer in use by the write that answered the last command: HoldsCompressor
// waits for it, so that the release timer's look never finds the lock held.
func idleFor(t *testing.T, clk *wssafe.FakeClock, s *wssafe.Session) {
	t.Helper()
	require.True(t, wssafe.HoldsCompressor(s), "the compressor is held before the interval")
	clk.AdvanceSync(wssafe.CompressorIdle)
}

// With coder/websocket's client in context-takeover mode (one inflater
// window for the session): the compressor is kept while messages come
// within an interval of each other, given back after an interval without
// one, and the messages after the release, by Write, Send and a burst of
// queued messages, inflate intact through the same window.
func TestTakeoverCompressorReleasedWhenIdle(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	url, sessions := takeoverSession(t, clk)
	c, ext := dialDeflate(t, url, websocket.CompressionContextTakeover)
	require.Equal(t, "permessage-deflate", ext)
	c.SetReadLimit(1 << 20)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	command := func(cmd string, replies int) {
		t.Helper()
		require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(cmd)))
		for i := range replies {
			_, got, err := c.Read(ctx)
			require.NoError(t, err, cmd)
			want := wantSample(cmd)
			if replies > 1 { // a burst: n, n+1, ... bytes
				want = deflateSample(len(want) + i)
			}
			require.True(t, bytes.Equal(want, got), "%s: %d bytes, not the sample", cmd, len(got))
		}
	}
	command("write 2000", 1)
	s := <-sessions
	command("write 3000", 1)
	idleFor(t, clk, s) // the first look: it compressed since the timer was armed
	assert.True(t, wssafe.HoldsCompressor(s), "kept: a message within the interval")
	command("send 2500", 1)
	idleFor(t, clk, s)
	assert.True(t, wssafe.HoldsCompressor(s), "kept: a message within the interval")
	idleFor(t, clk, s)
	assert.False(t, wssafe.HoldsCompressor(s), "given back after an interval without a compressed message")

	command("write 100", 1) // below the threshold: plain, takes no compressor
	assert.False(t, wssafe.HoldsCompressor(s))
	command("write 2000", 1)
	assert.True(t, wssafe.HoldsCompressor(s), "taken again for the next compressed message")
	command("burst 1500", 6)
	idleFor(t, clk, s)
	idleFor(t, clk, s)
	assert.False(t, wssafe.HoldsCompressor(s))
	command("send 4000", 1)
	command("write 2000", 1)
}

// A raw client reading every frame and inflating all the compressed
// payloads in order with one flate reader, as a client with context
// takeover does: the stream goes on across the release. The first message
// after the release refers to nothing before it (it inflates alone and
// is as long as the session's first), the next refers to it again.
func TestTakeoverCompressorReleaseRawStream(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	c, s, m := rawTakeoverSession(t, clk)
	first := m.payload
	payloads, want := [][]byte{first}, [][]byte{wantSample("write 2000")}
	command := func(cmd string) []byte {
		t.Helper()
		m := c.command(cmd)
		require.True(t, m.rsv1, cmd)
		payloads, want = append(payloads, m.payload), append(want, wantSample(cmd))
		return m.payload
	}
	second := command("write 2000")
	assert.Less(t, len(second)*2, len(first), "the repeated message refers to the first")
	idleFor(t, clk, s)
	idleFor(t, clk, s)
	require.False(t, wssafe.HoldsCompressor(s))

	fresh := command("write 2000")
	assert.Equal(t, len(first), len(fresh), "a new stream: no reference to the history")
	alone, err := tryInflateAlone(fresh)
	require.NoError(t, err, "the first message of the new stream inflates without the window")
	assert.Equal(t, wantSample("write 2000"), alone)
	again := command("write 2000")
	assert.Less(t, len(again)*2, len(fresh), "the new stream has history again")
	_, err = tryInflateAlone(again)
	assert.Error(t, err, "the next message refers to the new stream's history")
	command("write 5000")
	inflateStream(t, payloads, want)
}

// The release timer's look never waits for the write lock: when a write
// holds it, the compressor counts as in use, and is given back one
// interval later if nothing is compressed meanwhile.
func TestTakeoverCompressorLookDuringWrite(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	c, s, _ := rawTakeoverSession(t, clk)
	wssafe.CompressorLookDuringWrite(s)
	assert.True(t, wssafe.HoldsCompressor(s), "in use while a write holds the lock")
	clk.AdvanceSync(wssafe.CompressorIdle)
	assert.False(t, wssafe.HoldsCompressor(s), "given back at the next look")
	m := c.command("write 2000")
	require.True(t, m.rsv1)
	got, err := tryInflateAlone(m.payload)
	require.NoError(t, err)
	assert.Equal(t, wantSample("write 2000"), got)
}

// A takeover session that ends while a compressed write holds its write
// lock still gives its compressor back: the write does, as it finishes.
func TestTakeoverCompressorGivenBackByLastWrite(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	_, s, _ := rawTakeoverSession(t, clk)
	require.True(t, wssafe.HoldsCompressor(s))
	wssafe.EndDuringCompressedWrite(s, []byte(wantSample("write 2000")))
	assert.False(t, wssafe.HoldsCompressor(s), "the last write gives the compressor back")
}
