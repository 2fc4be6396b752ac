package wssafe_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe"
)

// pendingBody writes an opening handshake with hdr's header lines (see
// hostileRequest) on a new connection to the server behind url, and nothing
// after it: whatever body the head announces never comes.
func pendingBody(t *testing.T, url string, hdr map[string]string) net.Conn {
	t.Helper()
	c, _ := hostileRequest(t, url, http.MethodGet, hdr)
	return c.nc
}

// answerThenEOF reads the server's answer on nc and then the end of the
// connection, both before start+bound, and returns the answer and its head
// as sent (http.ReadResponse removes the Connection header it obeys).
func answerThenEOF(t *testing.T, nc net.Conn, start time.Time, bound time.Duration) (*http.Response, string) {
	t.Helper()
	nc.SetReadDeadline(start.Add(bound))
	var raw strings.Builder
	br := bufio.NewReader(io.TeeReader(nc, &raw))
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err, "no answer while the body is pending")
	_, err = io.Copy(io.Discard, resp.Body)
	require.NoError(t, err)
	resp.Body.Close()
	_, err = br.ReadByte()
	require.ErrorIs(t, err, io.EOF, "the server must close the connection, not wait for the body")
	assert.Less(t, time.Since(start), bound)
	head, _, _ := strings.Cut(raw.String(), "\r\n\r\n")
	return resp, head
}

// TestUpgradeWithBodyRefused: an upgrade request that announces a body is
// answered 400 at once, before any other check, without reading the body,
// and the server closes the connection. A bystander session is unaffected.
func TestUpgradeWithBodyRefused(t *testing.T) {
	t.Parallel()
	logger, logs := newLogger()
	ep, url := server(t, echo, &wssafe.Options{Logger: logger, SecurityLogInterval: -1})
	bystander := dial(t, url, nil)

	for _, row := range []struct {
		name string
		hdr  map[string]string
	}{
		{"trickling Content-Length", map[string]string{"Content-Length": "1000"}},
		{"chunked", map[string]string{"Transfer-Encoding": "chunked"}},
		{"cross-site with a body", map[string]string{"Origin": "https://evil.example", "Content-Length": "10"}},
		{"token with a body", map[string]string{"Authorization": "Bearer a.b.c", "Content-Length": "10"}},
	} {
		start := time.Now()
		nc := pendingBody(t, url, row.hdr)
		resp, head := answerThenEOF(t, nc, start, defaultBound)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, row.name)
		assert.Contains(t, head, "\r\nConnection: close\r\n", row.name)
		nc.Close()
	}

	// A trickle: one byte of the body, then the answer is already there.
	start := time.Now()
	nc := pendingBody(t, url, map[string]string{"Content-Length": "100"})
	nc.SetReadDeadline(start.Add(defaultBound))
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	nc.Write([]byte("x")) // the server may already have gone
	_, err = io.Copy(io.Discard, br)
	assert.False(t, isTimeout(err), "the connection stays open for the trickle: %v", err)

	assert.Equal(t, uint64(5), ep.Stats().Refused[wssafe.EventRequestBody])
	waitForLog(t, logs, `"event":"request_body"`)
	assert.Contains(t, logs.String(), `"level":"WARN","msg":"wssafe: upgrade request with a body refused"`)
	assert.Zero(t, ep.Stats().Refused[wssafe.EventOriginRefused], "the body check runs first")
	assert.Equal(t, uint64(1), ep.Stats().Accepted, "the bystander only")

	// Content-Length: 0 is no body: the handshake goes on.
	nc = pendingBody(t, url, map[string]string{"Content-Length": "0"})
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err = http.ReadResponse(bufio.NewReader(nc), nil)
	require.NoError(t, err)
	assert.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, bystander.Write(ctx, websocket.MessageText, []byte("still here")))
	_, p, err := bystander.Read(ctx)
	require.NoError(t, err)
	assert.Equal(t, "Server received: still here", string(p))
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// hideBody hands ep a copy of the request that claims to have no body, as
// a router or middleware that rewrites requests might: net/http still holds
// the real, pending body. Every refusal must then close the connection
// instead of letting net/http wait to drain that body.
func hideBody(ep http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r2 := r.Clone(r.Context())
		r2.ContentLength, r2.TransferEncoding = 0, nil
		ep.ServeHTTP(w, r2)
	})
}

// TestRefusalsCloseTheConnection: every HTTP error the Endpoint writes,
// its own and coder/websocket's, comes with Connection: close, and the
// server closes the socket at once even with a request body pending.
func TestRefusalsCloseTheConnection(t *testing.T) {
	t.Parallel()
	secret := []byte(strings.Repeat("k", 16) + "0123456789abcdef")
	for _, row := range []struct {
		name   string
		opts   wssafe.Options
		before func(t *testing.T, ep *wssafe.Endpoint, url string) // puts the endpoint in the state that refuses
		hdr    map[string]string                                   // replaces the default header lines of the same names
		status int
	}{
		{name: "403 origin", hdr: map[string]string{"Origin": "https://evil.example"}, status: http.StatusForbidden},
		{name: "403 denied address", opts: wssafe.Options{DenyIPs: []string{"127.0.0.0/8"}}, status: http.StatusForbidden},
		{name: "403 TLS required", opts: wssafe.Options{RequireTLS: true}, status: http.StatusForbidden},
		{name: "401 no token", opts: wssafe.Options{Auth: &wssafe.AuthOptions{HMACSecret: secret, Sources: wssafe.FromHeader}},
			status: http.StatusUnauthorized},
		{name: "429 handshake rate", opts: wssafe.Options{HandshakeRate: wssafe.Rate{PerSecond: 0.001, Burst: 1}},
			before: func(t *testing.T, _ *wssafe.Endpoint, url string) { dial(t, url, nil).CloseNow() },
			status: http.StatusTooManyRequests},
		{name: "503 at capacity", opts: wssafe.Options{MaxConns: 1},
			before: func(t *testing.T, _ *wssafe.Endpoint, url string) { dial(t, url, nil) },
			status: http.StatusServiceUnavailable},
		{name: "503 shutting down",
			before: func(t *testing.T, ep *wssafe.Endpoint, _ string) {
				require.NoError(t, ep.Shutdown(context.Background()))
			},
			status: http.StatusServiceUnavailable},
		{name: "400 from coder/websocket (version 8)", hdr: map[string]string{"Sec-WebSocket-Version": "8"}, status: http.StatusBadRequest},
		{name: "426 from coder/websocket", hdr: map[string]string{"Upgrade": "h2c"}, status: http.StatusUpgradeRequired},
	} {
		t.Run(row.name, func(t *testing.T) {
			t.Parallel()
			opts := row.opts
			opts.Logger, _ = newLogger()
			ep, err := wssafe.New(echo, &opts)
			require.NoError(t, err)
			srv := httptest.NewServer(hideBody(ep))
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				ep.Shutdown(ctx)
				srv.Close()
			})
			addr := srv.Listener.Addr().String()
			if row.before != nil {
				row.before(t, ep, "ws://"+addr)
			}
			hdr := map[string]string{"Content-Length": "1000"}
			maps.Copy(hdr, row.hdr)
			start := time.Now()
			nc := pendingBody(t, "ws://"+addr, hdr)
			resp, head := answerThenEOF(t, nc, start, defaultBound)
			assert.Equal(t, row.status, resp.StatusCode)
			assert.Contains(t, head, "\r\nConnection: close\r\n")
			if row.status == http.StatusUpgradeRequired {
				assert.Contains(t, head, "\r\nConnection: Upgrade\r\n", "a 426 names Upgrade in Connection (RFC 9110 7.8)")
				assert.Equal(t, "websocket", resp.Header.Get("Upgrade"))
			}
		})
	}
}
