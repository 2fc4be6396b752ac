package serve

import (
	"context"
	"flag"
	"net"
	"net/http"
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
	f.Register(fs, "127.0.0.1:1")
	require.NoError(t, fs.Parse([]string{"-read-limit", "100", "-origin", "a.example, b.example", "-log-format", "json"}))
	log, err := f.Logger(os.Stderr)
	require.NoError(t, err)
	o := f.Options(log)
	assert.Equal(t, int64(100), o.ReadLimit)
	assert.Equal(t, []string{"a.example", "b.example"}, o.OriginPatterns)

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
	go func() { done <- serve(ctx, log, ln, ep, ep) }()

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
