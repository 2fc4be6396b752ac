package wssafe_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe"
	"github.com/wssafe/wssafe/internal/leakcheck"
)

// TestMain fails the run if a test leaves a goroutine behind.
func TestMain(m *testing.M) {
	leakcheck.Main(m,
		func(g string) bool {
			return strings.Contains(g, "runtime.goexit") && strings.Contains(g, "created by runtime")
		},
		leakcheck.Containing("net/http.(*persistConn)")) // idle client keep-alives
}

// logBuffer is a goroutine-safe log sink for asserting on log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newLogger() (*slog.Logger, *logBuffer) {
	buf := &logBuffer{}
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// logRecorder is a slog.Handler that keeps every record it gets, for tests
// that check the level, event and attributes of wssafe's lines.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func newRecorder() (*slog.Logger, *logRecorder) {
	h := &logRecorder{}
	return slog.New(h), h
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecorder) WithGroup(string) slog.Handler            { return h }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Clone())
	return nil
}

// lines returns the level, message and attributes (as strings, "event"
// among them) of every record so far.
func (h *logRecorder) lines() []logLine {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]logLine, 0, len(h.recs))
	for _, r := range h.recs {
		l := logLine{level: r.Level, msg: r.Message, attrs: map[string]string{}}
		r.Attrs(func(a slog.Attr) bool {
			l.attrs[a.Key] = a.Value.String()
			return true
		})
		out = append(out, l)
	}
	return out
}

type logLine struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

// count returns the number of lines at level with event.
func (h *logRecorder) count(level slog.Level, event string) int {
	n := 0
	for _, l := range h.lines() {
		if l.level == level && l.attrs["event"] == event {
			n++
		}
	}
	return n
}

// total returns the number of lines at level, whatever their event.
func (h *logRecorder) total(level slog.Level) int {
	n := 0
	for _, l := range h.lines() {
		if l.level == level {
			n++
		}
	}
	return n
}

// suppressedOf returns the sum of the "suppressed" counts on event's lines.
func (h *logRecorder) suppressedOf(event string) int {
	n := 0
	for _, l := range h.linesOf(event) {
		k, _ := strconv.Atoi(l["suppressed"])
		n += k
	}
	return n
}

// linesOf returns the attributes of event's lines, in order.
func (h *logRecorder) linesOf(event string) []map[string]string {
	var out []map[string]string
	for _, l := range h.lines() {
		if l.attrs["event"] == event {
			out = append(out, l.attrs)
		}
	}
	return out
}

// warnings returns the messages of the Warn lines with event.
func (h *logRecorder) warnings(event string) []string {
	var out []string
	for _, l := range h.lines() {
		if l.level == slog.LevelWarn && l.attrs["event"] == event {
			out = append(out, l.msg)
		}
	}
	return out
}

// echo is the echo protocol: M gets "Server received: M".
var echo = wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
	return s.WriteText(ctx, "Server received: "+m.Text())
})

// server starts an endpoint for h with opts and returns it with its ws:// URL.
func server(t *testing.T, h wssafe.Handler, opts *wssafe.Options) (*wssafe.Endpoint, string) {
	t.Helper()
	return serverWith(t, h, opts, wssafe.Hooks{})
}

// serverWith is server with the test doubles in hooks (a fake clock).
func serverWith(t *testing.T, h wssafe.Handler, opts *wssafe.Options, hooks wssafe.Hooks) (*wssafe.Endpoint, string) {
	t.Helper()
	if opts == nil {
		opts = &wssafe.Options{}
	}
	if opts.Logger == nil {
		opts.Logger, _ = newLogger()
	}
	ep, err := wssafe.NewWithHooks(h, opts, hooks)
	require.NoError(t, err)
	return ep, serveOn(t, ep, nil)
}

// serveOn serves ep on an httptest server, whose listener wrap may replace
// (nil keeps it), until the end of the test, and returns its ws:// URL.
func serveOn(t *testing.T, ep *wssafe.Endpoint, wrap func(net.Listener) net.Listener) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(ep)
	if wrap != nil {
		srv.Listener = wrap(srv.Listener)
	}
	srv.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ep.Shutdown(ctx)
		srv.Close()
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// dial connects a client and closes it at the end of the test.
func dial(t *testing.T, url string, opts *websocket.DialOptions) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, opts)
	require.NoError(t, err)
	if resp.Body != nil {
		resp.Body.Close()
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// readClose reads until the connection ends and returns the close status.
func readClose(t *testing.T, c *websocket.Conn) websocket.CloseError {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, _, err := c.Read(ctx)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		require.ErrorAs(t, err, &ce, "connection ended without a close frame: %v", err)
		return ce
	}
}

var _ = http.StatusOK

// newFakeClock returns a fake clock (see export_test.go) stopped at the
// real time.
func newFakeClock() *wssafe.FakeClock { return wssafe.NewFakeClock(time.Now()) }

// waitForLog waits until the log holds want: some lines are written after
// the peer already has its close frame (coder/websocket sends 1009 itself).
func waitForLog(t *testing.T, logs *logBuffer, want string) {
	t.Helper()
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), want) },
		5*time.Second, 5*time.Millisecond, "log never got %s:\n%s", want, logs)
}
