package wssafe_test

import (
	"context"
	"log/slog"
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

func TestAllowedHosts(t *testing.T) {
	t.Parallel()
	const misdirected = http.StatusMisdirectedRequest
	for _, tc := range []struct {
		name    string
		allowed []string
		host    string // the Host header; "" is the URL's, 127.0.0.1:port; PORT is the server's port
		want    int
	}{
		{"unset accepts any Host", nil, "evil.example", accepted},
		{"address, any port", []string{"127.0.0.1"}, "", accepted},
		{"address and port", []string{"127.0.0.1:PORT"}, "", accepted},
		{"address, another port", []string{"127.0.0.1:1"}, "", misdirected},
		{"name, any port", []string{"localhost"}, "localhost:PORT", accepted},
		{"name without case or trailing dot", []string{"LocalHost."}, "LOCALHOST.:PORT", accepted},
		{"name and port", []string{"localhost:PORT"}, "localhost:PORT", accepted},
		{"name, another port", []string{"localhost:1"}, "localhost:PORT", misdirected},
		{"DNS rebinding", []string{"localhost", "127.0.0.1"}, "attacker.example:PORT", misdirected},
		{"a subdomain is another host", []string{"example.com"}, "app.example.com", misdirected},
		{"a name that contains the entry", []string{"example.com"}, "example.com.attacker.example", misdirected},
		{"default port omitted, 443", []string{"example.com:443"}, "example.com", accepted},
		{"default port omitted, 80", []string{"example.com:80"}, "example.com", accepted},
		{"default port omitted, other entry port", []string{"example.com:8443"}, "example.com", misdirected},
		{"leading zeros in a port", []string{"example.com:08443"}, "example.com:8443", accepted},
		{"IPv6, canonical form", []string{"[::1]:8080"}, "[0:0::1]:8080", accepted},
		{"IPv6, another port", []string{"[::1]:8080"}, "[::1]:8081", misdirected},
		{"bare IPv6 entry", []string{"::1"}, "[::1]:PORT", accepted},
		{"IPv4-mapped IPv6", []string{"127.0.0.1"}, "[::ffff:127.0.0.1]", accepted},
		{"empty port", []string{"localhost"}, "localhost:", misdirected},
		{"garbage", []string{"localhost"}, "local host", misdirected},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			logger, logs := newLogger()
			ep, url, port := hostsServer(t, &wssafe.Options{Logger: logger}, wssafe.Hooks{}, tc.allowed)
			host := strings.ReplaceAll(tc.host, "PORT", port)
			if host == "" {
				host = "127.0.0.1:" + port
			}
			opts := &websocket.DialOptions{Host: host, HTTPHeader: hdr("Origin", "http://"+host)}
			if tc.want == accepted {
				echoOnce(t, dial(t, url, opts), "hi")
				assert.Zero(t, ep.Stats().Refused[wssafe.EventHostRefused])
				return
			}
			assert.Equal(t, tc.want, handshake(t, url, opts).StatusCode)
			assert.Equal(t, uint64(1), ep.Stats().Refused[wssafe.EventHostRefused])
			assert.Contains(t, logs.String(), `"level":"WARN"`)
			assert.Contains(t, logs.String(), `"event":"host_refused"`)
			assert.Contains(t, logs.String(), `"host":`)
		})
	}
}

// hostsServer starts an endpoint whose AllowedHosts may name its own port
// (PORT in an entry).
func hostsServer(t *testing.T, o *wssafe.Options, hooks wssafe.Hooks, allowed []string) (*wssafe.Endpoint, string, string) {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	require.NoError(t, err)
	for _, a := range allowed {
		o.AllowedHosts = append(o.AllowedHosts, strings.ReplaceAll(a, "PORT", port))
	}
	ep, err := wssafe.NewWithHooks(echo, o, hooks)
	require.NoError(t, err)
	srv.Config.Handler = ep
	srv.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ep.Shutdown(ctx)
		srv.Close()
	})
	return ep, "ws" + strings.TrimPrefix(srv.URL, "http"), port
}

// A DNS-rebinding page is same-origin with itself, so only AllowedHosts
// stops it. Its refusals are counted one by one, logged once per address
// and interval, and leave a session on an allowed host untouched.
func TestAllowedHostsStopsDNSRebinding(t *testing.T) {
	t.Parallel()
	rebound := func(port string) *websocket.DialOptions {
		host := "attacker.example:" + port
		return &websocket.DialOptions{Host: host, HTTPHeader: hdr("Origin", "http://"+host)}
	}
	// Without the list, the origin check alone lets the page in.
	_, url, port := hostsServer(t, &wssafe.Options{}, wssafe.Hooks{}, nil)
	echoOnce(t, dial(t, url, rebound(port)), "hi")

	logger, logs := newLogger()
	o := &wssafe.Options{Logger: logger}
	ep, url, port := hostsServer(t, o, wssafe.Hooks{Clock: newFakeClock()}, []string{"localhost:PORT", "127.0.0.1:PORT"})
	bystander := dial(t, url, nil)
	for range 5 {
		assert.Equal(t, http.StatusMisdirectedRequest, handshake(t, url, rebound(port)).StatusCode)
	}
	echoOnce(t, bystander, "still here")
	assert.Equal(t, uint64(5), ep.Stats().Refused[wssafe.EventHostRefused])
	assert.Equal(t, 1, strings.Count(logs.String(), `"event":"host_refused"`))
	assert.Contains(t, logs.String(), `"host":"attacker.example:`+port+`"`)
}

func TestAllowedHostsInvalidEntries(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ entry, want string }{
		{"", "empty entry"},
		{"https://example.com/ws", `list the host (and port) only: "example.com"`},
		{"http://localhost:8080", `only: "localhost:8080"`},
		{"example.com/ws", `only: "example.com"`},
		{"*.example.com", "wildcards are not supported"},
		{"example.co?", "wildcards are not supported"},
		{"bücher.example", `punycode form "xn--bcher-kva.example"`},
		{"example.com:", "not a host or host:port"},
		{"example.com:0", "not a host or host:port"},
		{"example.com:65536", "not a host or host:port"},
		{"example.com:http", "not a host or host:port"},
		{":8080", "not a host or host:port"},
		{"exa mple.com", "not a host or host:port"},
		{"a..b", "not a host or host:port"},
		{".example.com", "not a host or host:port"},
		{"[::1", "not a host or host:port"},
		{"[::1]8080", "not a host or host:port"},
		{"[127.0.0.1]", "not a host or host:port"},
		{"[fe80::1%25eth0]", "not a host or host:port"},
	} {
		_, err := wssafe.New(echo, &wssafe.Options{AllowedHosts: []string{"example.com", tc.entry}})
		if assert.Error(t, err, tc.entry) {
			assert.Contains(t, err.Error(), tc.want, tc.entry)
		}
	}
	for _, ok := range []string{"example.com", "EXAMPLE.com.", "example.com:8443", "127.0.0.1", "127.0.0.1:8080", "[::1]", "[::1]:8080", "::1", "my_host.internal"} {
		_, err := wssafe.New(echo, &wssafe.Options{AllowedHosts: []string{ok}, Logger: slog.New(slog.DiscardHandler)})
		assert.NoError(t, err, ok)
	}
}
