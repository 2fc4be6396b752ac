package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The whole program: -stats-addr serves Prometheus metrics at /metrics,
// the public listener never does.
func TestMetricsOnStatsAddrOnly(t *testing.T) {
	addr, statsAddr := freeAddr(t), freeAddr(t)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", addr, "-stats-addr", statsAddr, "-log-level", "error"},
			func(string) string { return "" }, io.Discard)
	}()
	defer func() {
		stop()
		require.NoError(t, <-done)
	}()
	scrape := func(url string) (int, string) {
		resp, err := http.Get(url)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := http.Get("http://" + statsAddr + "/metrics")
		if err == nil {
			resp.Body.Close()
			break
		}
		require.True(t, time.Now().Before(deadline), "the chat did not start: %v", err)
		time.Sleep(20 * time.Millisecond) // waiting for a listener, not for an event
	}
	status, body := scrape("http://" + statsAddr + "/metrics")
	require.Equal(t, http.StatusOK, status)
	for _, name := range []string{"wssafe_sessions_active 0", "wssafe_handshakes_in_progress 0", "wssafe_handshakes_accepted_total 0",
		"# TYPE wssafe_handshake_duration_seconds histogram"} {
		assert.Contains(t, body, name)
	}

	status, body = scrape("http://" + addr + "/metrics")
	assert.Equal(t, http.StatusNotFound, status, "the public listener has no /metrics")
	assert.False(t, strings.Contains(body, "wssafe_"))
}
