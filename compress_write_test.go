package wssafe_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
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

// chatJSON is n bytes of chat messages with varying ids, senders, texts
// and times, the benchmarks' message: it deflates about 5x.
func chatJSON(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, `{"id":%d,"room":"lobby","from":"user%d","text":"message number %d says hi","ts":%d},`, i, i%7, i*31, 1700000000+i*17)
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

// rawWriteSession starts writeCommands with opts on the write path of
// hooks and dials it with a raw client offering offer, which the server
// must answer with the extension want.
func rawWriteSession(t *testing.T, opts *wssafe.Options, hooks wssafe.Hooks, offer, want string) *deflateClient {
	t.Helper()
	_, url := serverWith(t, writeCommands, opts, hooks)
	c := dialDeflateRaw(t, url, offer)
	require.Equal(t, want, c.ext)
	return c
}

// wireRow is a command to writeCommands and whether its answer goes out
// compressed, RSV1 set.
type wireRow struct {
	cmd        string
	compressed bool
}

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
			c := rawWriteSession(t, compressedOpts(), path.hooks, offerNoContext, offerNoContext)
			for _, row := range []wireRow{
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
	c := rawWriteSession(t, compressedOpts(), wssafe.Hooks{}, "x-unknown-extension", "")
	for _, cmd := range []string{"write 4096", "send 4096"} {
		m := c.command(cmd)
		assert.False(t, m.rsv1, cmd)
		assert.Equal(t, wantSample(cmd), m.payload, cmd)
	}
}

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
			c := rawWriteSession(t, takeoverOpts(), path.hooks, offerTakeover, "permessage-deflate")
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
			for _, row := range []wireRow{
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

// benchServe serves ep until the end of the benchmark's run and returns
// its ws:// URL. The run's raw clients (benchRaw) are closed before the
// shutdown, which need not wait for their close handshakes.
func benchServe(b *testing.B, ep *wssafe.Endpoint) string {
	srv := httptest.NewServer(ep)
	b.Cleanup(srv.Close)
	b.Cleanup(func() { ep.Shutdown(context.Background()) })
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// benchRaw is a raw client for the benchmarks: a handshake offering
// offer, then a message to the server and its one-frame answer, so that
// the session is serving (and in the Hub) when it returns. It is closed
// at the end of the benchmark's run.
func benchRaw(b *testing.B, url, offer string) (net.Conn, *bufio.Reader) {
	b.Helper()
	host := strings.TrimPrefix(url, "ws://")
	nc, err := net.Dial("tcp", host)
	require.NoError(b, err)
	b.Cleanup(func() { nc.Close() })
	fmt.Fprintf(nc, "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: %s\r\n\r\n", host, offer)
	br := bufio.NewReaderSize(nc, 64<<10)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(b, err)
	resp.Body.Close()
	require.Equal(b, http.StatusSwitchingProtocols, resp.StatusCode)
	_, err = nc.Write(textFrame("hello").bytes())
	require.NoError(b, err)
	_, err = benchFrame(br)
	require.NoError(b, err)
	return nc, br
}

// benchFrame reads one server frame and returns its length on the wire.
func benchFrame(br *bufio.Reader) (int, error) {
	h, err := br.Peek(2)
	if err != nil {
		return 0, err
	}
	n, hl := int(h[1]&0x7F), 2
	switch n {
	case 126:
		if h, err = br.Peek(4); err != nil {
			return 0, err
		}
		n, hl = int(binary.BigEndian.Uint16(h[2:])), 4
	case 127:
		if h, err = br.Peek(10); err != nil {
			return 0, err
		}
		n, hl = int(binary.BigEndian.Uint64(h[2:])), 10
	}
	_, err = br.Discard(hl + n)
	return hl + n, err
}

// benchCases are the sessions the compression benchmarks compare, side by
// side in one run: uncompressed, compressed without and with takeover.
var benchCases = []struct {
	name  string
	opts  wssafe.Options
	offer string
}{
	{"plain", wssafe.Options{Compression: true}, "x-none"},
	{"deflate", wssafe.Options{Compression: true}, offerNoContext},
	{"takeover", wssafe.Options{Compression: true, InsecureCompressionContextTakeover: true}, offerTakeover},
}

// BenchmarkCompressedWrite is Session.Write of a 1 KiB JSON message on
// the direct path, from the session's callback, to a peer that reads
// everything; ns/op and allocs/op are per message, wire-B/msg is its frame
// on the wire.
func BenchmarkCompressedWrite(b *testing.B) {
	msg := chatJSON(1024)
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			done := make(chan error, 1)
			h := wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
				n, err := strconv.Atoi(m.Text())
				if err != nil {
					return s.WriteText(ctx, "ok")
				}
				for range n {
					if err := s.Write(ctx, wssafe.MessageText, msg); err != nil {
						done <- err
						return err
					}
				}
				done <- nil
				return nil
			})
			opts := bc.opts
			opts.Logger = slog.New(slog.DiscardHandler)
			ep, err := wssafe.NewWithHooks(h, &opts, wssafe.Hooks{})
			require.NoError(b, err)
			nc, br := benchRaw(b, benchServe(b, ep), bc.offer)
			// The bytes on the wire of a message in steady state: the
			// second (with takeover, the first carries no history).
			_, err = nc.Write(textFrame("2").bytes())
			require.NoError(b, err)
			require.NoError(b, <-done)
			_, err = benchFrame(br)
			require.NoError(b, err)
			wire, err := benchFrame(br)
			require.NoError(b, err)
			go io.Copy(io.Discard, br)
			_, err = nc.Write(textFrame("1000").bytes()) // warm the pools and the stream
			require.NoError(b, err)
			require.NoError(b, <-done)
			b.ReportAllocs()
			b.ResetTimer()
			_, err = nc.Write(textFrame(strconv.Itoa(b.N)).bytes())
			require.NoError(b, err)
			require.NoError(b, <-done)
			b.StopTimer()
			b.ReportMetric(float64(wire), "wire-B/msg")
		})
	}
}

// BenchmarkCompressedBroadcast is Hub.Broadcast of a 1 KiB JSON message
// to 16 sessions that read everything, waiting every 32 broadcasts for
// all to arrive; ns/recipient is the time per message delivered, and
// allocs/op, per broadcast, does not grow with the recipients.
func BenchmarkCompressedBroadcast(b *testing.B) {
	const recipients, round = 16, 32
	msg := chatJSON(1024)
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			opts := bc.opts
			opts.Logger = slog.New(slog.DiscardHandler)
			ep, err := wssafe.NewWithHooks(echo, &opts, wssafe.Hooks{})
			require.NoError(b, err)
			url := benchServe(b, ep)
			var brs []*bufio.Reader
			for range recipients {
				_, br := benchRaw(b, url, bc.offer)
				brs = append(brs, br)
			}
			// One broadcast first, to learn each peer's frame length (the
			// takeover streams' later frames are shorter: read those by frame).
			require.Equal(b, recipients, ep.Hub().Broadcast(wssafe.MessageText, msg, nil))
			arrived := make(chan error, recipients)
			var wants []chan int // each reader's count of frames to read
			for _, br := range brs {
				_, err := benchFrame(br)
				require.NoError(b, err)
				want := make(chan int, 1)
				wants = append(wants, want)
				defer close(want)
				go func() {
					for n := range want {
						for range n {
							if _, err := benchFrame(br); err != nil {
								arrived <- err
								return
							}
						}
						arrived <- nil
					}
				}()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for left := b.N; left > 0; left -= round {
				k := min(left, round)
				for range k {
					ep.Hub().Broadcast(wssafe.MessageText, msg, nil)
				}
				for _, want := range wants {
					want <- k
				}
				for range recipients {
					require.NoError(b, <-arrived)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*recipients), "ns/recipient")
		})
	}
}

// sevenBitNoise is n bytes of seven random bits each: compressed, but only
// to about 7/8, so a compressed flood fills the socket quickly.
func sevenBitNoise(n int) []byte {
	b := noiseSample(n)
	for i := range b {
		b[i] &= 0x7F
	}
	return b
}

// coderMode is the mode in which coder/websocket's client offers
// compression, with context takeover or without.
func coderMode(takeover bool) websocket.CompressionMode {
	if takeover {
		return websocket.CompressionContextTakeover
	}
	return websocket.CompressionNoContextTakeover
}

// A compressed write to a peer that does not read times out as a plain
// one does: ErrWriteTimeout, the session closed with it, and no write
// after it goes out (the frame may have stopped midway), with and without
// takeover, on both paths.
func TestCompressedWriteTimeout(t *testing.T) {
	t.Parallel()
	for _, path := range writePaths {
		for _, takeover := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s takeover=%v", path.name, takeover), func(t *testing.T) {
				t.Parallel()
				writeErr, after := make(chan error, 1), make(chan error, 1)
				closed := make(chan error, 1)
				big := sevenBitNoise(1 << 20)
				_, url := serverWith(t, wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
					if !s.Compressed() {
						return errors.New("not compressed")
					}
					for {
						if err := s.Write(ctx, wssafe.MessageBinary, big); err != nil {
							writeErr <- err
							after <- s.Write(context.Background(), wssafe.MessageBinary, big)
							return err
						}
					}
				}), &wssafe.Options{
					Compression: true, InsecureCompressionContextTakeover: takeover,
					WriteTimeout: 100 * time.Millisecond,
					OnClose:      func(s *wssafe.Session, err error) { closed <- err },
				}, path.hooks)
				c, _ := dialDeflate(t, url, coderMode(takeover))
				require.NoError(t, c.Write(ctxT(t), websocket.MessageText, []byte("flood me"))) // and never read
				assert.ErrorIs(t, <-writeErr, wssafe.ErrWriteTimeout)
				assert.Error(t, <-after, "nothing is written after a failed write")
				assert.ErrorIs(t, <-closed, wssafe.ErrWriteTimeout)
			})
		}
	}
}

// Compressed Writes and Sends from many goroutines at once reach the peer
// intact, each a whole message, with and without takeover (where one
// message out of order would not inflate), on both paths.
func TestCompressedConcurrentWrites(t *testing.T) {
	t.Parallel()
	const writers, each = 6, 15
	msg := func(w, i int) []byte {
		return append([]byte(fmt.Sprintf("%d/%d ", w, i)), deflateSample(600+37*i+w)...)
	}
	h := wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					var err error
					switch i % 3 {
					case 0:
						err = s.Send(wssafe.MessageText, msg(w, i))
					case 1:
						err = s.Write(ctx, wssafe.MessageText, msg(w, i))
					default:
						err = s.WriteUncompressed(ctx, wssafe.MessageText, msg(w, i))
					}
					if err != nil {
						return
					}
				}
			})
		}
		wg.Wait()
		return nil
	})
	for _, path := range writePaths {
		for _, takeover := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s takeover=%v", path.name, takeover), func(t *testing.T) {
				t.Parallel()
				_, url := serverWith(t, h, &wssafe.Options{Compression: true, InsecureCompressionContextTakeover: takeover}, path.hooks)
				c, ext := dialDeflate(t, url, coderMode(takeover))
				assert.Equal(t, !takeover, strings.Contains(ext, "server_no_context_takeover"), ext)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				require.NoError(t, c.Write(ctx, websocket.MessageText, []byte("go")))
				next := make([]int, writers) // each writer's messages arrive in its order
				for range writers * each {
					_, b, err := c.Read(ctx)
					require.NoError(t, err)
					var w, i int
					_, err = fmt.Sscanf(string(b), "%d/%d ", &w, &i)
					require.NoError(t, err)
					require.Equal(t, next[w], i, "writer %d", w)
					require.Equal(t, msg(w, i), b)
					next[w]++
				}
			})
		}
	}
}
