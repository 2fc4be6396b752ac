package serve

import (
	"context"
	"encoding/json"
	"flag"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe"
)

func TestFlags(t *testing.T) {
	var f Flags
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	f.Register(fs, Flags{Addr: "127.0.0.1:1"})
	require.NoError(t, fs.Parse([]string{"-read-limit", "100", "-origin", "a.example, b.example", "-log-format", "json",
		"-allowed-host", "localhost:8765,127.0.0.1:8765"}))
	log, err := f.Logger(os.Stderr)
	require.NoError(t, err)
	o, err := f.Options(log)
	require.NoError(t, err)
	assert.Equal(t, int64(100), o.ReadLimit)
	assert.Equal(t, []string{"a.example", "b.example"}, o.OriginPatterns)
	assert.Equal(t, []string{"localhost:8765", "127.0.0.1:8765"}, o.AllowedHosts)

	f.LogLevel = "loud"
	_, err = f.Logger(os.Stderr)
	assert.ErrorContains(t, err, "-log-level")
	f.LogLevel, f.LogFormat = "info", "xml"
	_, err = f.Logger(os.Stderr)
	assert.ErrorContains(t, err, "-log-format")
}

func TestServeShutsDownGracefully(t *testing.T) {
	ep, err := wssafe.New(wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		return nil
	}), nil)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var f Flags
	f.LogLevel, f.LogFormat = "error", "text"
	log, _ := f.Logger(os.Stderr)
	go func() { done <- Serve(ctx, log, ln, ep, ep) }()

	dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(dctx, "ws://"+ln.Addr().String(), nil)
	require.NoError(t, err)
	defer c.CloseNow()
	stop() // as SIGTERM would
	_, _, err = c.Read(dctx)
	assert.Equal(t, websocket.StatusGoingAway, websocket.CloseStatus(err))
	require.NoError(t, <-done)
	_, err = http.Get("http://" + ln.Addr().String())
	assert.Error(t, err, "the listener is closed")
}

func TestGuardFlags(t *testing.T) {
	var f Flags
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	f.Register(fs, Flags{Addr: "127.0.0.1:1"})
	require.NoError(t, fs.Parse([]string{
		"-msg-rate", "2.5", "-msg-burst", "5", "-max-conns", "10", "-max-conns-per-ip", "3",
		"-allow-ip", "10.0.0.0/8, 192.0.2.0/24", "-deny-ip", "10.1.0.0/16", "-trusted-proxy", "127.0.0.1/32",
	}))
	o, err := f.Options(nil)
	require.NoError(t, err)
	assert.Equal(t, wssafe.Rate{PerSecond: 2.5, Burst: 5}, o.MessageRate)
	assert.Equal(t, 10, o.MaxConns)
	assert.Equal(t, 3, o.MaxConnsPerIP)
	assert.Equal(t, []string{"10.0.0.0/8", "192.0.2.0/24"}, o.AllowIPs)
	assert.Equal(t, []string{"10.1.0.0/16"}, o.DenyIPs)
	assert.Equal(t, []string{"127.0.0.1/32"}, o.TrustedProxies)

	f.MsgRate = 0
	_, err = f.Options(nil)
	assert.ErrorContains(t, err, "-msg-burst needs -msg-rate")
}

func TestStatsHandler(t *testing.T) {
	ep, err := wssafe.New(wssafe.HandlerFunc(func(context.Context, *wssafe.Session, wssafe.Message) error { return nil }), nil)
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	StatsHandler(ep).ServeHTTP(rec, httptest.NewRequest("GET", "/stats", nil))
	assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	var got map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
	assert.Contains(t, got, "active")
}
