package wssafe_test

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe"
)

// Compressed writes: what wssafe sends on a compressed session, checked
// by coder/websocket's client (which inflates) and by a raw reader that
// sees each frame's RSV1 and inflates its payload by hand.

// deflateSample is n bytes of chat-like JSON, which deflates well.
func deflateSample(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, `{"room":"lobby","from":"user%d","text":"hello there, how is it going?"},`, i%7)
	}
	return b.Bytes()[:n]
}

// noiseSample is n bytes that do not deflate.
func noiseSample(n int) []byte {
	r := rand.NewChaCha8([32]byte{7})
	b := make([]byte, n)
	r.Read(b)
	return b
}

// writeCommands is the handler of these tests: "<verb> <n>" writes n bytes,
// compressible ("write", "uncompressed", "send", "sendplain") or not
// ("noise"), by the method the verb names.
var writeCommands = wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
	verb, arg, _ := strings.Cut(m.Text(), " ")
	n, err := strconv.Atoi(arg)
	if err != nil {
		return err
	}
	switch verb {
	case "write":
		return s.Write(ctx, wssafe.MessageText, deflateSample(n))
	case "noise":
		return s.Write(ctx, wssafe.MessageBinary, noiseSample(n))
	case "uncompressed":
		return s.WriteUncompressed(ctx, wssafe.MessageText, deflateSample(n))
	case "send":
		return s.Send(wssafe.MessageText, deflateSample(n))
	case "sendplain":
		return s.SendUncompressed(wssafe.MessageText, deflateSample(n))
	case "burst": // five queued messages, then a Write behind them
		for i := range 5 {
			if err := s.Send(wssafe.MessageText, deflateSample(n+i)); err != nil {
				return err
			}
		}
		return s.Write(ctx, wssafe.MessageText, deflateSample(n+5))
	case "join":
		if err := s.Join("room"); err != nil {
			return err
		}
		return s.WriteText(ctx, "joined")
	}
	return fmt.Errorf("unknown verb %q", verb)
})

// wantSample is what the command cmd has the server send.
func wantSample(cmd string) []byte {
	verb, arg, _ := strings.Cut(cmd, " ")
	n, _ := strconv.Atoi(arg)
	if verb == "noise" {
		return noiseSample(n)
	}
	return deflateSample(n)
}

// compressedOpts is Compression on, with the default threshold.
func compressedOpts() *wssafe.Options { return &wssafe.Options{Compression: true} }

// takeoverOpts is compression with context takeover where the client
// agrees.
func takeoverOpts() *wssafe.Options {
	return &wssafe.Options{Compression: true, InsecureCompressionContextTakeover: true}
}

// A compressed session's client (coder/websocket, which inflates) gets
// every message intact, from 1 byte to 128 KiB, compressed or not, by
// Write, WriteUncompressed, Send and SendUncompressed, on both write paths.
func TestCompressedWritesArriveIntact(t *testing.T) {
	t.Parallel()
	for _, path := range writePaths {
		t.Run(path.name, func(t *testing.T) {
			t.Parallel()
			_, url := serverWith(t, writeCommands, compressedOpts(), path.hooks)
			_, takeoverURL := serverWith(t, writeCommands, takeoverOpts(), path.hooks)
			for _, row := range []struct {
				url  string
				mode websocket.CompressionMode
			}{
				{url, websocket.CompressionNoContextTakeover},
				{url, websocket.CompressionContextTakeover},
				{takeoverURL, websocket.CompressionNoContextTakeover},
				{takeoverURL, websocket.CompressionContextTakeover},
			} {
				url, mode := row.url, row.mode
				c, ext := dialDeflate(t, url, mode)
				require.Contains(t, ext, "permessage-deflate")
				c.SetReadLimit(1 << 20)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				for _, verb := range []string{"write", "noise", "uncompressed", "send", "sendplain"} {
					for _, n := range []int{1, 100, 511, 512, 1000, 4 << 10, 64 << 10, 128 << 10} {
						cmd := fmt.Sprintf("%s %d", verb, n)
						require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(cmd)))
						_, got, err := c.Read(ctx)
						require.NoError(t, err, cmd)
						require.True(t, bytes.Equal(wantSample(cmd), got), "%s: %d bytes, not the sample", cmd, len(got))
					}
				}
				cancel()
				c.Close(websocket.StatusNormalClosure, "")
			}
		})
	}
}

// rsvMessage is one message read by hand: its first frame's RSV1, its
// frames, and its payload as sent (still deflated if RSV1 is set).
type rsvMessage struct {
	rsv1    bool
	frames  int
	payload []byte
}

// deflateClient is a raw client that offers ext in its handshake.
type deflateClient struct {
	*hostileConn
	t   *testing.T
	ext string // the extension the server answered with
}

func dialDeflateRaw(t *testing.T, wsURL, offer string) *deflateClient {
	t.Helper()
	c, _ := hostileRequest(t, wsURL, http.MethodGet, map[string]string{"Sec-WebSocket-Extensions": offer})
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(c.br, nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	return &deflateClient{hostileConn: c, t: t, ext: resp.Header.Get("Sec-WebSocket-Extensions")}
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
		var h [2]byte
		_, err := io.ReadFull(c.br, h[:])
		require.NoError(c.t, err)
		n := uint64(h[1] & 0x7F)
		switch n {
		case 126:
			var b [2]byte
			_, err = io.ReadFull(c.br, b[:])
			n = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			_, err = io.ReadFull(c.br, b[:])
			n = binary.BigEndian.Uint64(b[:])
		}
		require.NoError(c.t, err)
		require.Zero(c.t, h[1]&0x80, "a server frame is not masked")
		require.LessOrEqual(c.t, n, uint64(1<<20))
		p := make([]byte, n)
		_, err = io.ReadFull(c.br, p)
		require.NoError(c.t, err)
		require.Zero(c.t, h[0]&(rsv2|rsv3), "RSV2 and RSV3 stay clear")
		op := h[0] & 0x0F
		require.NotEqual(c.t, byte(opPing), op, "no ping expected in these tests")
		if m.frames == 0 {
			m.rsv1 = h[0]&rsv1 != 0
		} else {
			require.Equal(c.t, byte(opCont), op)
			require.Zero(c.t, h[0]&rsv1, "RSV1 only on a message's first frame")
		}
		m.frames++
		m.payload = append(m.payload, p...)
		if h[0]&0x80 != 0 {
			return m
		}
	}
}

// inflateAlone inflates one message's payload on its own, as a peer
// without context takeover does: a fresh reader, the tail put back.
func inflateAlone(t *testing.T, p []byte) []byte {
	t.Helper()
	require.False(t, bytes.HasSuffix(p, []byte("\x00\x00\xff\xff")), "the RFC 7692 tail is stripped")
	fr := flate.NewReader(io.MultiReader(bytes.NewReader(p), strings.NewReader("\x00\x00\xff\xff")))
	out, err := io.ReadAll(fr)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF, "a sync-flushed stream has no final block: it ends where the data does")
	return out
}

const offerNoContext = "permessage-deflate; client_no_context_takeover; server_no_context_takeover"

// On the wire, on both write paths: a message of CompressionThreshold
// bytes or more goes out with RSV1 set, its payload valid deflate without
// the tail that inflates on its own; a shorter one, one that does not
// deflate smaller, and one sent by WriteUncompressed or SendUncompressed
// go out plain, RSV1 clear.
func TestCompressedFramesOnTheWire(t *testing.T) {
	t.Parallel()
	for _, path := range writePaths {
		t.Run(path.name, func(t *testing.T) {
			t.Parallel()
			_, url := serverWith(t, writeCommands, compressedOpts(), path.hooks)
			c := dialDeflateRaw(t, url, offerNoContext)
			require.Equal(t, offerNoContext, c.ext)
			for _, row := range []struct {
				cmd        string
				compressed bool
			}{
				{"write 511", false},
				{"write 512", true},
				{"write 1024", true},
				{"write 100000", true},
				{"send 2000", true},
				{"write 100", false},
				{"uncompressed 2000", false},
				{"sendplain 2000", false},
				{"uncompressed 100", false},
				{"noise 2000", path.name == "coder"}, // coder sends what it compressed, larger or not
			} {
				m := c.command(row.cmd)
				want := wantSample(row.cmd)
				require.Equal(t, row.compressed, m.rsv1, row.cmd)
				if !m.rsv1 {
					assert.Equal(t, want, m.payload, row.cmd)
					continue
				}
				if !strings.HasPrefix(row.cmd, "noise") {
					assert.Less(t, len(m.payload), len(want)/2, "%s: compressed", row.cmd)
				}
				if path.name == "direct" {
					assert.Equal(t, 1, m.frames, "%s: one frame", row.cmd)
				}
				assert.Equal(t, want, inflateAlone(t, m.payload), row.cmd)
			}
		})
	}
}

// A session that did not negotiate compression gets every message plain.
func TestUncompressedSessionWritesPlain(t *testing.T) {
	t.Parallel()
	_, url := server(t, writeCommands, compressedOpts())
	c := dialDeflateRaw(t, url, "x-unknown-extension")
	require.Empty(t, c.ext)
	for _, cmd := range []string{"write 4096", "send 4096"} {
		m := c.command(cmd)
		assert.False(t, m.rsv1, cmd)
		assert.Equal(t, wantSample(cmd), m.payload, cmd)
	}
}

// tryInflateAlone is inflateAlone that reports failure instead of failing.
func tryInflateAlone(p []byte) ([]byte, error) {
	out, err := io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(p), strings.NewReader("\x00\x00\xff\xff"))))
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
		require.False(t, bytes.HasSuffix(p, []byte("\x00\x00\xff\xff")), "the RFC 7692 tail is stripped")
		all = append(append(all, p...), "\x00\x00\xff\xff"...)
	}
	fr := flate.NewReader(bytes.NewReader(all))
	for i, w := range want {
		got := make([]byte, len(w))
		_, err := io.ReadFull(fr, got)
		require.NoError(t, err, "message %d", i)
		require.Equal(t, w, got, "message %d", i)
	}
}

const offerTakeover = "permessage-deflate"

// With context takeover (the option on, the client agreeing), every
// compressed message to the session continues one stream, in write order:
// Write, Send, queued messages and the Write behind them. The messages
// inflate in sequence with one reader, a repeated message compresses to a
// fraction of the first, and one does not inflate alone. Plain messages
// (short, WriteUncompressed) stay out of the stream; an incompressible
// one is still compressed, since the peer's window must hold it.
func TestContextTakeoverStream(t *testing.T) {
	t.Parallel()
	for _, path := range writePaths {
		t.Run(path.name, func(t *testing.T) {
			t.Parallel()
			_, url := serverWith(t, writeCommands, takeoverOpts(), path.hooks)
			c := dialDeflateRaw(t, url, offerTakeover)
			require.Equal(t, "permessage-deflate", c.ext)
			var payloads, want [][]byte
			var sizes []int
			add := func(cmd string, m rsvMessage, w []byte) {
				if m.rsv1 {
					payloads, want = append(payloads, m.payload), append(want, w)
					sizes = append(sizes, len(m.payload))
				} else {
					assert.Equal(t, w, m.payload, cmd)
				}
			}
			for _, row := range []struct {
				cmd        string
				compressed bool
			}{
				{"write 2000", true},
				{"write 2000", true},
				{"write 100", false},
				{"uncompressed 2000", false},
				{"send 3000", true},
				{"noise 1000", path.name == "direct"}, // coder sends it compressed too
				{"sendplain 2000", false},
				{"write 2000", true},
			} {
				m := c.command(row.cmd)
				if row.cmd != "noise 1000" || path.name == "direct" {
					assert.Equal(t, row.compressed, m.rsv1, row.cmd)
				}
				add(row.cmd, m, wantSample(row.cmd))
			}
			_, err := c.nc.Write(textFrame("burst 1500").bytes())
			require.NoError(t, err)
			for i := range 6 {
				m := c.message()
				assert.True(t, m.rsv1, "burst message %d", i)
				add("burst", m, deflateSample(1500+i))
			}
			inflateStream(t, payloads, want)
			assert.Less(t, sizes[1]*2, sizes[0], "the repeated message refers to the first: %v", sizes)
			_, err = tryInflateAlone(payloads[1])
			assert.Error(t, err, "a message of the stream does not inflate without its history")
		})
	}
}

// A broadcast and a topic publication reach a mix of sessions on one
// endpoint with takeover allowed: compressed without takeover (raw and
// coder clients), compressed with takeover, and uncompressed, each with
// the right bytes in the right framing.
func TestCompressedBroadcastMixed(t *testing.T) {
	t.Parallel()
	for _, path := range writePaths {
		t.Run(path.name, func(t *testing.T) {
			t.Parallel()
			ep, url := serverWith(t, writeCommands, takeoverOpts(), path.hooks)
			raws := map[string]*deflateClient{
				"no context": dialDeflateRaw(t, url, offerNoContext),
				"takeover":   dialDeflateRaw(t, url, offerTakeover),
				"plain":      dialDeflateRaw(t, url, "x-unknown-extension"),
			}
			var coders []*websocket.Conn
			for _, mode := range []websocket.CompressionMode{websocket.CompressionDisabled, websocket.CompressionNoContextTakeover, websocket.CompressionContextTakeover} {
				c, _ := dialDeflate(t, url, mode)
				c.SetReadLimit(1 << 20)
				coders = append(coders, c)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for _, c := range raws {
				require.Equal(t, "joined", string(c.command("join 0").payload))
			}
			for _, c := range coders {
				require.NoError(t, c.Write(ctx, websocket.MessageText, []byte("join 0")))
				_, b, err := c.Read(ctx)
				require.NoError(t, err)
				require.Equal(t, "joined", string(b))
			}
			msgs := [][]byte{deflateSample(4000), deflateSample(5000), deflateSample(4000), []byte("short")}
			assert.Equal(t, 6, ep.Hub().Broadcast(wssafe.MessageText, msgs[0], nil))
			n, err := ep.Hub().Publish(wssafe.Publication{Topic: "room", Type: wssafe.MessageText, Data: msgs[1]})
			require.NoError(t, err)
			assert.Equal(t, 6, n)
			assert.Equal(t, 6, ep.Hub().Broadcast(wssafe.MessageText, msgs[2], nil))
			assert.Equal(t, 6, ep.Hub().Broadcast(wssafe.MessageText, msgs[3], nil))

			for name, c := range raws {
				var got []rsvMessage
				for range msgs {
					got = append(got, c.message())
				}
				assert.False(t, got[3].rsv1, "%s: a short message is plain", name)
				assert.Equal(t, msgs[3], got[3].payload, name)
				switch name {
				case "plain":
					for i, m := range got[:3] {
						assert.False(t, m.rsv1, name)
						assert.Equal(t, msgs[i], m.payload, name)
					}
				case "no context":
					for i, m := range got[:3] {
						assert.True(t, m.rsv1, name)
						assert.Equal(t, msgs[i], inflateAlone(t, m.payload), name)
					}
				case "takeover":
					for _, m := range got[:3] {
						assert.True(t, m.rsv1, name)
					}
					inflateStream(t, [][]byte{got[0].payload, got[1].payload, got[2].payload}, msgs[:3])
				}
			}
			for i, c := range coders {
				for _, want := range msgs {
					_, b, err := c.Read(ctx)
					require.NoError(t, err, "coder client %d", i)
					assert.Equal(t, want, b, "coder client %d", i)
				}
			}
		})
	}
}

// A broadcast and a topic publication to many compressed sessions without
// takeover are compressed once each, and every such session gets the same
// compressed bytes; an uncompressed session gets the plain frame. Not
// parallel: the count is the test binary's.
func TestBroadcastCompressedOnce(t *testing.T) {
	ep, url := server(t, writeCommands, compressedOpts())
	var cs []*deflateClient
	for range 4 {
		cs = append(cs, dialDeflateRaw(t, url, offerNoContext))
	}
	plain := dialDeflateRaw(t, url, "x-unknown-extension")
	for _, c := range append(cs, plain) {
		require.Equal(t, "joined", string(c.command("join 0").payload))
	}
	msg := deflateSample(8000)
	before := wssafe.Deflations()
	assert.Equal(t, 5, ep.Hub().Broadcast(wssafe.MessageText, msg, nil))
	n, err := ep.Hub().Publish(wssafe.Publication{Topic: "room", Type: wssafe.MessageText, Data: msg})
	require.NoError(t, err)
	assert.Equal(t, 5, n)
	var first []byte
	for _, c := range cs {
		for range 2 {
			m := c.message()
			require.True(t, m.rsv1)
			if first == nil {
				first = m.payload
				assert.Equal(t, msg, inflateAlone(t, first))
			}
			assert.Equal(t, first, m.payload, "the one compressed frame, shared")
		}
	}
	for range 2 {
		m := plain.message()
		assert.False(t, m.rsv1)
		assert.Equal(t, msg, m.payload)
	}
	assert.Equal(t, uint64(2), wssafe.Deflations()-before, "one compression per message, not per session")
}
