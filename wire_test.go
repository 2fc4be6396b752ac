package wssafe_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"regexp"
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

// writePaths are the two ways data frames reach the socket: written by
// wssafe (a coder/websocket version the tests cover) or by coder's
// Conn.Write (any other version). Write tests run under both.
var writePaths = []struct {
	name  string
	hooks wssafe.Hooks
}{
	{"direct", wssafe.Hooks{}},
	{"coder", wssafe.Hooks{CoderWrites: true}},
}

// The direct write path is enabled for the coder/websocket versions whose
// write path the tests cover. This fails when go.mod moves to another
// version: run this suite against it (TestCoderFramesAreWholeWrites above
// all), then add the version to coderTested in wire.go.
func TestCoderVersionCovered(t *testing.T) {
	t.Parallel()
	mod, err := os.ReadFile("go.mod")
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^\s*github\.com/coder/websocket (v\S+)`).FindSubmatch(mod)
	require.NotNil(t, m, "go.mod requires coder/websocket")
	assert.Contains(t, wssafe.CoderTested(), string(m[1]),
		"coder/websocket %s is not one the direct write path is vouched for", m[1])

	ep, err := wssafe.New(echo, nil)
	require.NoError(t, err)
	assert.False(t, wssafe.DirectWrites(ep), "a test binary has no dependency versions: New falls back")
}

// frameLen returns the length of the server frame at the start of b, or
// -1 if b does not hold a whole one.
func frameLen(b []byte) int {
	if len(b) < 2 {
		return -1
	}
	h, n := 2, int(b[1]&0x7F)
	switch n {
	case 126:
		if len(b) < 4 {
			return -1
		}
		h, n = 4, int(binary.BigEndian.Uint16(b[2:]))
	case 127:
		if len(b) < 10 {
			return -1
		}
		h, n = 10, int(binary.BigEndian.Uint64(b[2:]))
	}
	if len(b) < h+n {
		return -1
	}
	return h + n
}

// writeRecorder keeps the server's Writes after its 101 response.
type writeRecorder struct {
	net.Conn
	mu      sync.Mutex
	upgrade bool // the 101 response has been written
	writes  [][]byte
	got     chan byte // the first byte of each write
}

func (c *writeRecorder) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.upgrade {
		c.writes = append(c.writes, bytes.Clone(p))
		select {
		case c.got <- p[0]:
		default:
		}
	}
	c.upgrade = c.upgrade || bytes.HasSuffix(p, []byte("\r\n\r\n"))
	c.mu.Unlock()
	return c.Conn.Write(p)
}

type recordingListener struct {
	net.Listener
	conns chan *writeRecorder
}

func (l *recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	r := &writeRecorder{Conn: c, got: make(chan byte, 64)}
	l.conns <- r
	return r, nil
}

// The direct path's assumptions about coder/websocket, checked on the
// wire: every Write reaching the connection holds whole frames only, each
// control frame (pong, ping, close) is exactly one Write, and the close
// frame starts with 0x88. A coder upgrade that splits a control frame, or
// buffers one past its flush, fails here.
func TestCoderFramesAreWholeWrites(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	ep, err := wssafe.NewWithHooks(wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		if m.Text() == "close" {
			return &wssafe.CloseError{Code: 4001, Reason: "bye"}
		}
		n, _ := strconv.Atoi(m.Text())
		if err := s.Write(ctx, wssafe.MessageBinary, make([]byte, n)); err != nil {
			return err
		}
		s.Send(wssafe.MessageText, []byte("queued"))
		return nil
	}), &wssafe.Options{PingInterval: time.Minute, InsecureNoPingLimit: true}, wssafe.Hooks{Clock: clock})
	require.NoError(t, err)
	rl := make(chan *writeRecorder, 1)
	url := serveOn(t, ep, func(l net.Listener) net.Listener { return &recordingListener{Listener: l, conns: rl} })
	c := dial(t, url, nil)
	c.SetReadLimit(1 << 20)
	rec := <-rl
	ctx := ctxT(t)
	msgs := make(chan []byte, 16)
	readErr := make(chan error, 1)
	go func() {
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				readErr <- err
				return
			}
			msgs <- b
		}
	}()
	wait := func(first byte) {
		t.Helper()
		for {
			select {
			case b := <-rec.got:
				if b == first {
					return
				}
			case <-ctx.Done():
				t.Fatalf("no frame starting %#x", first)
			}
		}
	}
	next := func() []byte {
		t.Helper()
		select {
		case b := <-msgs:
			return b
		case err := <-readErr:
			t.Fatalf("read: %v", err)
		case <-ctx.Done():
			t.Fatal("no message")
		}
		return nil
	}
	for _, n := range []int{0, 125, 126, 1024, 16 << 10, 60 << 10} {
		require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(strconv.Itoa(n))))
		assert.Len(t, next(), n)
		assert.Equal(t, "queued", string(next()))
	}
	require.NoError(t, c.Ping(ctx)) // the server's pong
	clock.Advance(time.Minute)      // the server's keepalive ping; the reader answers it
	wait(0x89)
	ep.Hub().Broadcast(wssafe.MessageText, []byte("all"), nil)
	assert.Equal(t, "all", string(next()))
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte("close")))
	var ce websocket.CloseError
	require.ErrorAs(t, <-readErr, &ce)
	assert.Equal(t, websocket.StatusCode(4001), ce.Code)

	rec.mu.Lock()
	defer rec.mu.Unlock()
	ops := map[byte]int{}
	for i, w := range rec.writes {
		for b := w; len(b) > 0; {
			n := frameLen(b)
			require.Positive(t, n, "write %d (% x...) ends inside a frame", i, w[:min(len(w), 16)])
			if op := b[0] & 0x0F; op >= 8 {
				require.Len(t, w, n, "a control frame %#x shares its write", b[0])
			}
			ops[b[0]]++
			b = b[n:]
		}
	}
	assert.Positive(t, ops[0x8A], "a pong")
	assert.Positive(t, ops[0x89], "a ping")
	assert.Equal(t, 1, ops[0x88], "one close frame, first byte 0x88")
	last := rec.writes[len(rec.writes)-1]
	assert.Equal(t, byte(0x88), last[0], "the close frame comes last")
}

// coder/websocket closes 1002 and 1009 itself with its error's text as the
// reason; the peer sees the fixed reasons instead: every hostile row that
// ends in one of those codes, on both write paths.
func TestCoderCloseReasonsFixed(t *testing.T) {
	t.Parallel()
	fixed := map[int]string{1002: "protocol error", 1009: "message too big"}
	for _, path := range writePaths {
		for _, row := range hostileRows() {
			want, ok := fixed[row.code]
			if !ok {
				continue
			}
			t.Run(path.name+"/"+row.name, func(t *testing.T) {
				t.Parallel()
				opts := &wssafe.Options{}
				if row.opts != nil {
					row.opts(opts)
				}
				_, url := serverWith(t, mirrorHandler, opts, path.hooks)
				out := hostileDial(t, url).play(row.send, defaultBound)
				require.Equal(t, row.code, out.code)
				assert.Equal(t, want, out.reason)
			})
		}
	}
}

// A close the application asks for keeps its reason on both write paths,
// also with the codes coder/websocket closes with itself (whose own
// reasons wire.go replaces).
func TestOwnCloseReasonsKept(t *testing.T) {
	t.Parallel()
	for _, path := range writePaths {
		for _, code := range []wssafe.StatusCode{wssafe.StatusProtocolError, wssafe.StatusMessageTooBig} {
			t.Run(fmt.Sprintf("%s/%d", path.name, code), func(t *testing.T) {
				t.Parallel()
				h := wssafe.HandlerFunc(func(context.Context, *wssafe.Session, wssafe.Message) error {
					return &wssafe.CloseError{Code: code, Reason: "over your quota"}
				})
				_, url := serverWith(t, h, nil, path.hooks)
				c := dial(t, url, nil)
				require.NoError(t, c.Write(context.Background(), websocket.MessageText, []byte("upload")))
				ce := readClose(t, c)
				assert.Equal(t, websocket.StatusCode(code), ce.Code)
				assert.Equal(t, "over your quota", ce.Reason)
			})
		}
	}
}

// Messages of every length class arrive whole and in order, from Write,
// Send, SendPrepared and Broadcast, over plain TCP (writev), TLS and a
// wrapped connection (one gathered Write), on both write paths; Stats
// counts payload bytes.
func TestWritePaths(t *testing.T) {
	t.Parallel()
	sizes := []int{0, 1, 125, 126, 1024, 16 << 10, 65535, 65536, 70 << 10}
	for _, path := range writePaths {
		for _, conn := range []string{"tcp", "tls", "wrapped"} {
			t.Run(path.name+"/"+conn, func(t *testing.T) {
				t.Parallel()
				prepared := wssafe.NewPreparedMessage(wssafe.MessageBinary, []byte("prepared"))
				var ep *wssafe.Endpoint
				ep, err := wssafe.NewWithHooks(wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
					for i, n := range sizes {
						p := bytes.Repeat([]byte{byte(i)}, n)
						if i%2 == 0 {
							require.NoError(t, s.Send(wssafe.MessageBinary, p))
						} else {
							require.NoError(t, s.Write(ctx, wssafe.MessageBinary, p))
						}
					}
					require.NoError(t, s.SendPrepared(prepared))
					ep.Hub().Broadcast(wssafe.MessageText, []byte("broadcast"), nil)
					return s.WriteText(ctx, "done")
				}), &wssafe.Options{ReadLimit: 1 << 20}, path.hooks)
				require.NoError(t, err)
				var opts *websocket.DialOptions
				var url string
				switch conn {
				case "tls":
					srv := httptest.NewUnstartedServer(ep)
					srv.StartTLS()
					t.Cleanup(func() { ep.Shutdown(context.Background()); srv.Close() })
					url = "wss" + strings.TrimPrefix(srv.URL, "https")
					opts = &websocket.DialOptions{HTTPClient: srv.Client()}
				case "wrapped":
					url = serveOn(t, ep, func(l net.Listener) net.Listener {
						return &recordingListener{Listener: l, conns: make(chan *writeRecorder, 1)}
					})
				default:
					url = serveOn(t, ep, nil)
				}
				c := dial(t, url, opts)
				c.SetReadLimit(1 << 20)
				ctx := ctxT(t)
				require.NoError(t, c.Write(ctx, websocket.MessageText, []byte("go")))
				var sent int64
				for i, n := range sizes {
					_, got, err := c.Read(ctx)
					require.NoError(t, err)
					require.Equal(t, bytes.Repeat([]byte{byte(i)}, n), got, "message %d of %d bytes", i, n)
					sent += int64(n)
				}
				for _, want := range []string{"prepared", "broadcast", "done"} {
					_, got, err := c.Read(ctx)
					require.NoError(t, err)
					require.Equal(t, want, string(got))
				}
				sent += int64(len("prepared") + len("broadcast") + len("done"))
				tr := ep.Stats().Traffic
				assert.Equal(t, int64(len(sizes)+3), tr.MessagesOut)
				assert.Equal(t, sent, tr.BytesOut)
			})
		}
	}
}

// A broadcast burst to a session whose drain batches frames arrives whole
// and in order, and interleaves correctly with the session's own Writes.
func TestBroadcastBurstInOrder(t *testing.T) {
	t.Parallel()
	for _, path := range writePaths {
		t.Run(path.name, func(t *testing.T) {
			t.Parallel()
			const n = 1000
			started := make(chan *wssafe.Session, 1)
			ep, url := serverWith(t, wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
				started <- s
				return nil
			}), &wssafe.Options{SendQueueMessages: n + 1}, path.hooks)
			c := dial(t, url, nil)
			ctx := ctxT(t)
			require.NoError(t, c.Write(ctx, websocket.MessageText, []byte("hi")))
			s := <-started
			for i := range n {
				if i%100 == 50 {
					require.NoError(t, s.WriteText(ctx, "w"+strconv.Itoa(i)))
				}
				require.Equal(t, 1, ep.Hub().Broadcast(wssafe.MessageText, []byte(strconv.Itoa(i)), nil))
			}
			for i := range n {
				if i%100 == 50 {
					_, got, err := c.Read(ctx)
					require.NoError(t, err)
					require.Equal(t, "w"+strconv.Itoa(i), string(got))
				}
				_, got, err := c.Read(ctx)
				require.NoError(t, err)
				require.Equal(t, strconv.Itoa(i), string(got))
			}
		})
	}
}

// A message type other than text or binary is refused, not written as a
// control or continuation frame.
func TestWriteRefusesOtherTypes(t *testing.T) {
	t.Parallel()
	errs := make(chan []error, 1)
	_, url := server(t, wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		errs <- []error{
			s.Write(ctx, wssafe.MessageType(9), []byte("x")),
			s.Send(wssafe.MessageType(0), []byte("x")),
			s.SendPrepared(wssafe.NewPreparedMessage(wssafe.MessageType(8), nil)),
		}
		return s.WriteText(ctx, "ok")
	}), nil)
	c := dial(t, url, nil)
	ctx := ctxT(t)
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte("go")))
	for _, err := range <-errs {
		assert.ErrorContains(t, err, "MessageText or MessageBinary")
	}
	_, got, err := c.Read(ctx)
	require.NoError(t, err)
	assert.Equal(t, "ok", string(got))
}
