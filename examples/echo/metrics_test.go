package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

// get returns the status and body of a GET of url.
func get(t *testing.T, url string) (int, string, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

// The whole program: -stats-addr serves Prometheus metrics at /metrics,
// the public listener never does.
func TestMetricsOnStatsAddrOnly(t *testing.T) {
	addr, statsAddr := freeAddr(t), freeAddr(t)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", addr, "-stats-addr", statsAddr, "-log-level", "error"}, nil, io.Discard)
	}()
	defer func() {
		stop()
		require.NoError(t, <-done)
	}()
	dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var conn *websocket.Conn
	for {
		var err error
		if conn, _, err = websocket.Dial(dctx, "ws://"+addr, nil); err == nil {
			break
		}
		require.NoError(t, dctx.Err(), "the echo did not start: %v", err)
		time.Sleep(20 * time.Millisecond) // waiting for a listener, not for an event
	}
	defer conn.CloseNow()
	require.NoError(t, conn.Write(dctx, websocket.MessageText, []byte("hello")))
	_, _, err := conn.Read(dctx)
	require.NoError(t, err)

	status, ctype, body := get(t, "http://"+statsAddr+"/metrics")
	require.Equal(t, http.StatusOK, status)
	assert.True(t, strings.HasPrefix(ctype, "text/plain"), ctype)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	require.NoError(t, err, "Prometheus text format")
	value := func(name string) float64 {
		mf := families[name]
		require.NotNil(t, mf, name)
		m := mf.GetMetric()[0]
		if m.GetGauge() != nil {
			return m.GetGauge().GetValue()
		}
		return m.GetCounter().GetValue()
	}
	assert.Equal(t, 1.0, value("wssafe_sessions_active"))
	assert.Equal(t, 1.0, value("wssafe_handshakes_accepted_total"))
	assert.Contains(t, body, `wssafe_messages_total{direction="received"} 1`)
	assert.Contains(t, body, "wssafe_handler_duration_seconds_count 1")
	assert.Contains(t, families, "go_goroutines")

	status, _, body = get(t, "http://"+statsAddr+"/stats")
	assert.Equal(t, http.StatusOK, status)
	assert.Contains(t, body, `"accepted":1`, "the JSON Stats stay")

	status, _, body = get(t, "http://"+addr+"/metrics")
	assert.NotEqual(t, http.StatusOK, status, "the public listener serves WebSocket only")
	assert.NotContains(t, body, "wssafe_")
}
