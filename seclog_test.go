package wssafe_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wssafe/wssafe"
)

// hammer sends n handshakes to url (an http:// URL) over workers raw
// connections and returns the count of each HTTP status; header(i) adds
// the i-th handshake's headers. A connection that the server keeps open
// after its first answer gets the rest of its share pipelined (net/http's
// client would take ten times longer); one the server closes gets one
// handshake per connection.
func hammer(t *testing.T, url string, n, workers int, header func(i int) http.Header) map[int]int {
	t.Helper()
	u, err := neturl.Parse(url)
	require.NoError(t, err)
	reqs := make([][]byte, n)
	for i := range reqs {
		r, err := http.NewRequest(http.MethodGet, url, nil)
		require.NoError(t, err)
		r.Header = header(i)
		r.Header.Set("Connection", "Upgrade")
		r.Header.Set("Upgrade", "websocket")
		r.Header.Set("Sec-WebSocket-Version", "13")
		r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		var b bytes.Buffer
		require.NoError(t, r.Write(&b))
		reqs[i] = b.Bytes()
	}
	var mu sync.Mutex
	statuses := map[int]int{}
	var errs []error
	var wg sync.WaitGroup
	for w := range workers {
		share := reqs[w*n/workers : (w+1)*n/workers]
		wg.Go(func() {
			got, err := hammerConn(u.Host, share)
			mu.Lock()
			defer mu.Unlock()
			for k, v := range got {
				statuses[k] += v
			}
			errs = append(errs, err)
		})
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	return statuses
}

func hammerConn(addr string, reqs [][]byte) (map[int]int, error) {
	statuses := map[int]int{}
	for len(reqs) > 0 {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return statuses, err
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		read := func() (*http.Response, error) {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				return nil, err
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses[resp.StatusCode]++
			reqs = reqs[1:]
			return resp, nil
		}
		if _, err := c.Write(reqs[0]); err != nil {
			c.Close()
			return statuses, err
		}
		resp, err := read()
		if err != nil || resp.Close || len(reqs) == 0 {
			c.Close()
			if err != nil {
				return statuses, err
			}
			continue
		}
		wrote := make(chan struct{})
		go func(rest [][]byte) {
			defer close(wrote)
			for _, r := range rest {
				if _, err := c.Write(r); err != nil {
					return
				}
			}
		}(reqs)
		for len(reqs) > 0 {
			if resp, err = read(); err != nil || resp.Close {
				break
			}
		}
		c.Close()
		<-wrote
		if err != nil {
			return statuses, err
		}
	}
	return statuses, nil
}

// A flood of refused handshakes from one address (3,000 forged tokens,
// jwx-signed with a wrong key or garbage; 3,000 plain ws:// handshakes to
// a RequireTLS endpoint) writes one Warn line per second of the clock,
// each carrying the count suppressed before it, while Stats and the
// Observer count every one.
func TestHandshakeFloodLogBounded(t *testing.T) {
	t.Parallel()
	const batch, batches = 1000, 3
	for _, tc := range []struct {
		name    string
		event   string
		options func(f *authFixture) *wssafe.Options
		header  func(f *authFixture) func(i int) http.Header
		status  int
		check   func(t *testing.T, st wssafe.Stats, obs []wssafe.Observation)
	}{{
		name:  "forged tokens",
		event: wssafe.EventAuthFailed,
		options: func(f *authFixture) *wssafe.Options {
			o := f.options(nil)
			o.SecurityLogInterval = 0 // the default, which the fixture turns off
			return o
		},
		header: func(f *authFixture) func(int) http.Header {
			wrong := make([]byte, 32)
			rand.Read(wrong)
			forged := make([]string, 16)
			for i := range forged {
				forged[i] = f.sign(jwa.HS256(), wrong, f.claims(claims{"jti": fmt.Sprint(i)}), nil)
			}
			return func(i int) http.Header {
				tok := forged[i%len(forged)]
				if i%2 == 1 {
					tok = fmt.Sprintf("garbage-%d", i)
				}
				return http.Header{"Authorization": {"Bearer " + tok}}
			}
		},
		status: http.StatusUnauthorized,
		check: func(t *testing.T, st wssafe.Stats, obs []wssafe.Observation) {
			assert.Equal(t, uint64(batch*batches), st.Refused[wssafe.EventAuthFailed], "every refused handshake in Refused")
			var failed uint64
			for _, n := range st.AuthFailed {
				failed += n
			}
			assert.Equal(t, uint64(batch*batches), failed, "every failure in AuthFailed: %v", st.AuthFailed)
			assert.Equal(t, uint64(batch*batches/2), st.AuthFailed["signature"])
			n, withSession := 0, 0
			for _, o := range obs {
				if o.Kind == wssafe.AuthFailed && o.ClientIP.String() == "127.0.0.1" {
					n++
					if o.Session != nil {
						withSession++
					}
				}
			}
			assert.Equal(t, batch*batches, n, "one observation per refused token")
			assert.Zero(t, withSession, "refused before the upgrade: no session")
			assert.Len(t, obs, batch*batches, "and nothing else")
		},
	}, {
		name:  "plain ws to a RequireTLS endpoint",
		event: wssafe.EventTLSRequired,
		options: func(f *authFixture) *wssafe.Options {
			return &wssafe.Options{RequireTLS: true}
		},
		header: func(*authFixture) func(int) http.Header {
			return func(int) http.Header { return http.Header{} }
		},
		status: http.StatusForbidden,
		check: func(t *testing.T, st wssafe.Stats, obs []wssafe.Observation) {
			assert.Equal(t, map[string]uint64{wssafe.EventTLSRequired: batch * batches}, st.Refused)
			assert.Equal(t, map[string]int{"handshake_refused/tls_required": batch * batches}, tally(obs))
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newAuthFixture(t)
			opts := tc.options(f)
			logger, lines := newRecorder()
			opts.Logger = logger
			rec := &recorder{}
			opts.Observer = rec.Observe
			ep, url := f.server(t, echo, opts)
			url = "http" + strings.TrimPrefix(url, "ws")
			header := tc.header(f)
			for b := range batches {
				if b > 0 {
					f.clock.Advance(time.Second)
				}
				statuses := hammer(t, url, batch, 8, func(i int) http.Header { return header(b*batch + i) })
				require.Equal(t, map[int]int{tc.status: batch}, statuses)
			}
			assert.Equal(t, batches, lines.count(slog.LevelWarn, tc.event), "one line per second from one address")
			assert.Equal(t, batches, lines.total(slog.LevelWarn), "and no other Warn line")
			assert.Equal(t, (batches-1)*(batch-1), lines.suppressedOf(tc.event), "each line counts the ones suppressed before it")
			st := ep.Stats()
			assert.Equal(t, uint64(batches*(batch-1)), st.LogsSuppressed)
			tc.check(t, st, rec.all())
		})
	}
}

// The log budget is per event as well as global: a flood of one event from
// 300 addresses takes a bounded share of the log and does not silence the
// first line of another event from a fresh address.
func TestLogFloodOfOneEventSparesAnother(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	logger, lines := newRecorder()
	opts := &wssafe.Options{Logger: logger, DenyIPs: []string{"10.0.0.0/8"}, TrustedProxies: []string{"127.0.0.1/32"}}
	ep, url := serverWith(t, echo, opts, wssafe.Hooks{Clock: clock})
	statuses := hammer(t, "http"+strings.TrimPrefix(url, "ws"), 300, 4, func(i int) http.Header {
		return hdr("X-Forwarded-For", fmt.Sprintf("10.0.%d.%d", i/250, 1+i%250))
	})
	require.Equal(t, map[int]int{http.StatusForbidden: 300}, statuses)
	denied := lines.count(slog.LevelWarn, wssafe.EventIPDenied)
	assert.Positive(t, denied)
	assert.LessOrEqual(t, denied, 20, "one event's share of the log is bounded")

	// Same (fake) instant, a fresh address, another event: logged.
	resp := dialRefused(t, url, hdr("X-Forwarded-For", "192.0.2.9", "Origin", "https://evil.example"))
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Equal(t, 1, lines.count(slog.LevelWarn, wssafe.EventOriginRefused))
	assert.Equal(t, "192.0.2.9", lines.linesOf(wssafe.EventOriginRefused)[0]["client"])
	st := ep.Stats()
	assert.Equal(t, uint64(300), st.Refused[wssafe.EventIPDenied])
	assert.Equal(t, uint64(300-denied), st.LogsSuppressed)
}

// Error lines a client can provoke (a handler error, a panic) are limited
// per source and event like Warn lines; Stats count every one.
func TestErrorLinesRateLimited(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	logger, lines := newRecorder()
	opts := &wssafe.Options{Logger: logger}
	ep, url := serverWith(t, wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		if m.Text() == "boom" {
			panic("kaboom")
		}
		return errors.New("the handler failed")
	}), opts, wssafe.Hooks{Clock: clock})
	provoke := func(msg string) {
		c := dial(t, url, nil)
		require.NoError(t, c.Write(ctxT(t), websocket.MessageText, []byte(msg)))
		assert.Equal(t, websocket.StatusInternalError, readClose(t, c).Code)
	}
	for range 5 {
		provoke("fail")
		provoke("boom")
	}
	require.Eventually(t, func() bool { return ep.Stats().Closed[wssafe.StatusInternalError] == 10 }, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, 1, lines.count(slog.LevelError, wssafe.EventHandlerError))
	assert.Equal(t, 1, lines.count(slog.LevelError, wssafe.EventPanic))
	assert.Equal(t, uint64(5), ep.Stats().Panics, "every panic counted")

	clock.Advance(time.Second)
	provoke("fail")
	require.Eventually(t, func() bool { return lines.count(slog.LevelError, wssafe.EventHandlerError) == 2 }, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, 4, lines.suppressedOf(wssafe.EventHandlerError))
}

// Stats and the Observer count security events whatever the log level: a
// logger that drops Warn lines changes only the log.
func TestSecurityEventsCountedWhateverTheLogLevel(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	quiet := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))
	ep, url := server(t, echo, &wssafe.Options{RequireTLS: true, Logger: quiet, Observer: rec.Observe})
	statuses := hammer(t, "http"+strings.TrimPrefix(url, "ws"), 50, 2, func(int) http.Header { return http.Header{} })
	require.Equal(t, map[int]int{http.StatusForbidden: 50}, statuses)
	assert.Equal(t, uint64(50), ep.Stats().Refused[wssafe.EventTLSRequired])
	assert.Equal(t, map[string]int{"handshake_refused/tls_required": 50}, tally(rec.all()))
	assert.Zero(t, ep.Stats().LogsSuppressed, "a line the level drops is not a suppressed one")
}

// Security log lines are limited per source and event; the count of
// suppressed lines comes with the next one; the Observer still sees all.
func TestSecurityLogRateLimited(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	logger, logs := newLogger()
	rec := &recorder{}
	opts := &wssafe.Options{Logger: logger, Observer: rec.Observe, DenyIPs: []string{"203.0.113.0/24"},
		TrustedProxies: []string{"127.0.0.1/32"}}
	ep, url := serverWith(t, echo, opts, wssafe.Hooks{Clock: clock})
	denied := hdr("X-Forwarded-For", "203.0.113.1")
	for range 10 {
		dialRefused(t, url, denied)
	}
	assert.Equal(t, 1, strings.Count(logs.String(), `"event":"ip_denied"`))
	// Another source gets its own line.
	dialRefused(t, url, hdr("X-Forwarded-For", "203.0.113.2"))
	assert.Equal(t, 2, strings.Count(logs.String(), `"event":"ip_denied"`))

	clock.Advance(time.Second)
	dialRefused(t, url, denied)
	assert.Equal(t, 3, strings.Count(logs.String(), `"event":"ip_denied"`))
	assert.Contains(t, logs.String(), `"suppressed":9`)
	assert.Equal(t, uint64(9), ep.Stats().LogsSuppressed)
	assert.Equal(t, 12, tally(rec.all())["handshake_refused/ip_denied"])

	// Session events from one source: five sessions sending invalid UTF-8
	// are five closes and observations, but one log line.
	for range 5 {
		c := dialWith(t, url, nil)
		require.NoError(t, c.Write(context.Background(), websocket.MessageText, []byte{0xff}))
		assert.Equal(t, websocket.StatusInvalidFramePayloadData, readClose(t, c).Code)
	}
	require.Eventually(t, func() bool { return ep.Stats().Closed[wssafe.StatusInvalidPayload] == 5 }, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, 1, strings.Count(logs.String(), `"event":"invalid_utf8"`))
	assert.Equal(t, 5, tally(rec.all())["validation_failed/invalid_utf8"])
}

// A negative SecurityLogInterval logs every line.
func TestSecurityLogUnlimited(t *testing.T) {
	t.Parallel()
	logger, logs := newLogger()
	_, url := server(t, echo, &wssafe.Options{Logger: logger, DenyIPs: []string{"127.0.0.0/8"}, SecurityLogInterval: -1})
	for range 3 {
		dialRefused(t, url, nil)
	}
	assert.Equal(t, 3, strings.Count(logs.String(), `"event":"ip_denied"`))
}

// The log limiter's state stays bounded under many sources.
func TestLogLimiterBounded(t *testing.T) {
	t.Parallel()
	logger, _ := newLogger()
	opts := &wssafe.Options{DenyIPs: []string{"10.0.0.0/8"}, TrustedProxies: []string{"192.0.2.1/32"}, Logger: logger}
	ep, err := wssafe.NewWithHooks(echo, opts, wssafe.Hooks{MaxSources: 32})
	require.NoError(t, err)
	for i := range 500 {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = "192.0.2.1:1234"
		r.Header.Set("X-Forwarded-For", fmt.Sprintf("10.0.%d.%d", i/256, i%256))
		w := httptest.NewRecorder()
		ep.ServeHTTP(w, r)
		require.Equal(t, 403, w.Code)
		require.LessOrEqual(t, wssafe.LogSources(ep), 32)
	}
}
