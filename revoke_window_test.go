package wssafe_test

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe"
)

// closeOnce returns an Authorize hook that, the first time it sees alice,
// moves the clock past her token's iat and calls close, then lets her in:
// the close lands between the session's revocation check and its
// opening.
func closeOnce(f *authFixture, close func()) func(context.Context, string, jwt.Token) error {
	var done atomic.Bool
	return func(_ context.Context, sub string, _ jwt.Token) error {
		if sub == "alice" && done.CompareAndSwap(false, true) {
			f.clock.Advance(500 * time.Millisecond)
			close()
		}
		return nil
	}
}

// A session whose subject is closed, or revoked, while the application's
// Authorize runs for it does not open: before Accept it is refused (403
// for a close, 401 for a revoked token), after it (first-message auth) it
// is closed as the open sessions were (3003) or as a revoked token is
// (3000). A session authorized after the close opens.
func TestCloseSubjectDuringAuthorize(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		lifetime time.Duration
		first    bool // the token comes as the first message
		status   int
		code     wssafe.StatusCode
		reason   string
	}{
		{name: "handshake, close", status: http.StatusForbidden},
		{name: "handshake, revoke", lifetime: lifetime, status: http.StatusUnauthorized},
		{name: "first message, close", first: true, code: wssafe.StatusForbidden, reason: "forbidden"},
		{name: "first message, revoke", lifetime: lifetime, first: true, code: wssafe.StatusUnauthorized, reason: "invalid token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newAuthFixture(t)
			var ep atomic.Pointer[wssafe.Endpoint]
			opts := f.options(func(a *wssafe.AuthOptions) {
				a.MaxTokenLifetime = tc.lifetime
				a.Authorize = closeOnce(f, func() { require.NoError(t, ep.Load().Hub().CloseSubject("alice", nil)) })
			})
			e, url := f.server(t, whoami, opts)
			ep.Store(e)
			tok := f.issued("alice", time.Minute)
			if tc.first {
				c := dial(t, url, nil)
				sendMsg(t, c, websocket.MessageText, tok)
				closedWith(t, c, tc.code, tc.reason)
			} else {
				assert.Equal(t, tc.status, handshake(t, url, bearer(tok)).StatusCode)
			}
			if tc.lifetime > 0 {
				assert.Contains(t, f.logs.String(), `"reason":"revoked"`)
				assert.Equal(t, uint64(1), e.Stats().AuthFailed["revoked"])
			} else {
				assert.Equal(t, []string{"alice 1 3003"}, subjectClosedLines(t, f.logs))
			}
			assert.Empty(t, e.Hub().Sessions())

			f.clock.Advance(time.Second) // a token issued after the revocation
			c := dial(t, url, bearer(f.issued("alice", time.Minute)))
			assert.Equal(t, "alice|alice|after", roundTrip(t, c, "after"))
			f.assertNoTokenLogged()
		})
	}
}

// hijackHook calls before when the endpoint hijacks the connection: after
// admission, before the session is accepted.
type hijackHook struct {
	http.ResponseWriter
	before func()
}

func (w hijackHook) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.before()
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// A close of the subject that lands after admission but before the
// session is accepted (while the 101 goes out) closes the session at
// once, with the close's frame, instead of letting it open.
func TestCloseSubjectBeforeAccept(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	ep, err := wssafe.NewWithHooks(whoami, f.options(nil), f.hooks())
	require.NoError(t, err)
	var closed atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ep.ServeHTTP(hijackHook{w, func() {
			if closed.CompareAndSwap(false, true) {
				require.NoError(t, ep.Hub().CloseSubject("alice", &wssafe.CloseError{Code: 4001, Reason: "logged out"}))
			}
		}}, r)
	}))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ep.Shutdown(ctx)
		srv.Close()
	})
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	c := dial(t, url, bearer(f.issued("alice", time.Minute)))
	closedWith(t, c, 4001, "logged out")
	assert.Equal(t, []string{"alice 1 4001"}, subjectClosedLines(t, f.logs))
	assert.Empty(t, ep.Hub().Sessions())
	assert.Zero(t, ep.Stats().Opened)

	c = dial(t, url, bearer(f.issued("alice", time.Minute)))
	assert.Equal(t, "alice|alice|after", roundTrip(t, c, "after"))
}

// A close or a revocation from another node that arrives while a session
// is being authorized refuses that session too.
func TestClusterCloseDuringAuthorize(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		lifetime time.Duration
		status   int
	}{
		{"close", 0, http.StatusForbidden},
		{"revoke", lifetime, http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newFakeCluster()
			f := newAuthFixture(t)
			var ep1 atomic.Pointer[wssafe.Endpoint]
			e1, _, _ := c.node(t, f, "n1", f.options(func(a *wssafe.AuthOptions) { a.MaxTokenLifetime = tc.lifetime }))
			ep1.Store(e1)
			_, url2, _ := c.node(t, f, "n2", f.options(func(a *wssafe.AuthOptions) {
				a.MaxTokenLifetime = tc.lifetime
				a.Authorize = closeOnce(f, func() { require.NoError(t, ep1.Load().Hub().CloseSubject("alice", nil)) })
			}))
			assert.Equal(t, tc.status, handshake(t, url2, bearer(f.issued("alice", time.Minute))).StatusCode)
			f.clock.Advance(time.Second)
			echoOnce(t, dial(t, url2, bearer(f.issued("alice", time.Minute))), "after")
		})
	}
}
