package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// getStats fetches url's /stats with token (none if empty).
func getStats(t *testing.T, base, token string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest("GET", base+"/stats", nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return resp, out
}

func TestStatsAreForSignedInUsersAndOnlyThePanel(t *testing.T) {
	_, base := chatServer(t)
	for _, token := range []string{"", "not-a-jwt"} {
		resp, out := getStats(t, base, token)
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		assert.Equal(t, `Bearer error="invalid_token"`, resp.Header.Get("WWW-Authenticate"))
		assert.NotContains(t, out, "sessions")
	}
	ann := login(t, base, "Ann", "ann@example.com")
	resp, _ := getStats(t, base, ann.Token+"x")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a tampered token")
	req, _ := http.NewRequest("GET", base+"/stats", nil)
	req.Header.Set("Authorization", "Basic "+ann.Token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a token not sent as the page sends it")

	c := connect(t, base, ann.Token)
	next(t, c, "presence")
	resp, out := getStats(t, base, ann.Token)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	keys := []string{}
	for k := range out {
		keys = append(keys, k)
	}
	assert.ElementsMatch(t, []string{
		"sessions", "messages in", "messages out", "invalid messages",
		"limits hit", "auth failures", "refused handshakes",
	}, keys, "what the panel shows and nothing more")
	assert.Equal(t, float64(1), out["sessions"])
}

// freeAddr returns a loopback address nothing listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

// The whole program: the public listener's /stats is the panel's summary
// for signed-in users, -stats-addr serves the full Stats.
func TestFullStatsStayOnStatsAddr(t *testing.T) {
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
	base := "http://" + addr
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := http.Get(base + "/")
		if err == nil {
			resp.Body.Close()
			break
		}
		require.True(t, time.Now().Before(deadline), "the chat did not start: %v", err)
		time.Sleep(20 * time.Millisecond) // waiting for a listener, not for an event
	}

	resp, _ := getStats(t, base, "")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	_, panel := getStats(t, base, login(t, base, "Ann", "ann@example.com").Token)
	assert.Contains(t, panel, "sessions")
	assert.NotContains(t, panel, "refused")
	assert.NotContains(t, panel, "accepted")

	resp, full := getStats(t, "http://"+statsAddr, "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	for _, k := range []string{"active", "accepted", "refused", "auth_failed", "limit_hits", "logs_suppressed"} {
		assert.Contains(t, full, k)
	}
}
