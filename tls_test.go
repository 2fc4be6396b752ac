package wssafe_test

import (
	"context"
	"log/slog"
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

// handshakeStatus dials url and returns the HTTP status of the handshake
// (101 when it succeeded, after closing the connection).
func handshakeStatus(t *testing.T, url string, opts *websocket.DialOptions) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, opts)
	if err == nil {
		c.Close(websocket.StatusNormalClosure, "")
	}
	require.NotNil(t, resp, "no HTTP response: %v", err)
	if resp.Body != nil {
		resp.Body.Close()
	}
	return resp.StatusCode
}

func TestRequireTLSRefusesPlainWS(t *testing.T) {
	t.Parallel()
	log, buf := newLogger()
	_, url := server(t, echo, &wssafe.Options{RequireTLS: true, Logger: log})
	assert.Equal(t, http.StatusForbidden, handshakeStatus(t, url, nil))
	assert.Contains(t, buf.String(), `"level":"WARN"`)
	assert.Contains(t, buf.String(), `"event":"tls_required"`)
}

func TestRequireTLSAcceptsTLS(t *testing.T) {
	t.Parallel()
	ep, err := wssafe.New(echo, &wssafe.Options{RequireTLS: true, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	srv := httptest.NewTLSServer(ep)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ep.Shutdown(ctx)
		srv.Close()
	})
	url := "wss" + strings.TrimPrefix(srv.URL, "https")
	c := dial(t, url, &websocket.DialOptions{HTTPClient: srv.Client()})
	assert.Equal(t, "Server received: over TLS", roundTrip(t, c, "over TLS"))
	require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))
}

func TestRequireTLSBehindProxy(t *testing.T) {
	t.Parallel()
	loopback := []string{"127.0.0.0/8", "::1/128"}
	for _, tc := range []struct {
		name    string
		trusted []string
		header  http.Header
		want    int
	}{
		{"trusted proxy, https", loopback, http.Header{"X-Forwarded-Proto": {"https"}}, http.StatusSwitchingProtocols},
		{"trusted proxy, wss", loopback, http.Header{"X-Forwarded-Proto": {"wss"}}, http.StatusSwitchingProtocols},
		{"trusted proxy, appended https", loopback, http.Header{"X-Forwarded-Proto": {"http, https"}}, http.StatusSwitchingProtocols},
		{"trusted proxy, Forwarded", loopback, http.Header{"Forwarded": {`for=192.0.2.7;proto=https;host=example.com`}}, http.StatusSwitchingProtocols},
		{"trusted proxy, http", loopback, http.Header{"X-Forwarded-Proto": {"http"}}, http.StatusForbidden},
		{"trusted proxy, no header", loopback, nil, http.StatusForbidden},
		{"trusted proxy, client's https before proxy's http", loopback, http.Header{"X-Forwarded-Proto": {"https, http"}}, http.StatusForbidden},
		{"trusted proxy, Forwarded says http", loopback, http.Header{"Forwarded": {"proto=http"}, "X-Forwarded-Proto": {"https"}}, http.StatusForbidden},
		{"trusted proxy, Forwarded appended", loopback, http.Header{"Forwarded": {"proto=https, for=192.0.2.7;proto=http"}}, http.StatusForbidden},
		{"untrusted peer spoofs header", []string{"10.0.0.0/8"}, http.Header{"X-Forwarded-Proto": {"https"}}, http.StatusForbidden},
		{"no trusted proxies", nil, http.Header{"X-Forwarded-Proto": {"https"}, "Forwarded": {"proto=https"}}, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, url := server(t, echo, &wssafe.Options{RequireTLS: true, TrustedProxies: tc.trusted})
			assert.Equal(t, tc.want, handshakeStatus(t, url, &websocket.DialOptions{HTTPHeader: tc.header}))
		})
	}
}
