package wssafe_test

import (
	"context"
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe"
)

// subjects returns the subjects of ss, sorted.
func subjects(ss []*wssafe.Session) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Subject())
	}
	sort.Strings(out)
	return out
}

// readText reads one text message.
func readText(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, p, err := c.Read(ctx)
	require.NoError(t, err)
	return string(p)
}

func TestHubRegistry(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	ep, url := f.server(t, echo, headerAuth(f))
	hub := ep.Hub()
	a1 := dialWith(t, url, f.as("alice"))
	a2 := dialWith(t, url, f.as("alice"))
	b := dialWith(t, url, f.as("bob"))
	carol := dialWith(t, url, f.as("carol"))
	require.Eventually(t, func() bool { return len(hub.Sessions()) == 4 }, 5*time.Second, 10*time.Millisecond)

	assert.Equal(t, []string{"alice", "alice", "bob", "carol"}, subjects(hub.Sessions()))
	assert.Equal(t, []string{"alice", "alice"}, subjects(hub.BySubject("alice")))
	assert.Nil(t, hub.BySubject("dave"))
	bob := hub.BySubject("bob")[0]
	assert.Same(t, bob, hub.ByID(bob.ID()))
	assert.Nil(t, hub.ByID("no such id"))

	// Logout everywhere: alice's sessions close with the code of the error.
	require.NoError(t, hub.CloseSubject("", wssafe.ErrForbidden))
	require.NoError(t, hub.CloseSubject("alice", wssafe.ErrForbidden))
	for _, c := range []*websocket.Conn{a1, a2} {
		ce := readClose(t, c)
		assert.Equal(t, wssafe.StatusForbidden, ce.Code)
		assert.Equal(t, "forbidden", ce.Reason)
	}
	require.Eventually(t, func() bool { return len(hub.Sessions()) == 2 }, 5*time.Second, 10*time.Millisecond)
	assert.Nil(t, hub.BySubject("alice"))

	// Close one session by ID, from another goroutine than its callback's:
	// Close returns after the close handshake, so the client reads meanwhile.
	ces := make(chan websocket.CloseError, 1)
	go func() { ces <- readClose(t, b) }()
	hub.ByID(bob.ID()).Close(&wssafe.CloseError{Code: 4001, Reason: "kicked"})
	ce := <-ces
	assert.Equal(t, websocket.StatusCode(4001), ce.Code)
	assert.Equal(t, "kicked", ce.Reason)
	assert.Nil(t, hub.ByID("no such id"))
	echoOnce(t, carol, "still here")

	// Unauthenticated sessions share no subject.
	anonEp, anonURL := server(t, echo, nil)
	dialWith(t, anonURL, nil)
	require.Eventually(t, func() bool { return len(anonEp.Hub().Sessions()) == 1 }, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, []string{""}, subjects(anonEp.Hub().Sessions()))
	assert.Nil(t, anonEp.Hub().BySubject(""))
}

func TestHubBroadcast(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	ep, url := f.server(t, echo, headerAuth(f))
	hub := ep.Hub()
	alice := dialWith(t, url, f.as("alice"))
	bob := dialWith(t, url, f.as("bob"))
	require.Eventually(t, func() bool { return len(hub.Sessions()) == 2 }, 5*time.Second, 10*time.Millisecond)

	msg := []byte("to all")
	assert.Equal(t, 2, hub.Broadcast(wssafe.MessageText, msg, nil))
	msg[0] = 'X' // Broadcast copied it
	assert.Equal(t, "to all", readText(t, alice))
	assert.Equal(t, "to all", readText(t, bob))

	n := hub.Broadcast(wssafe.MessageText, []byte("bob only"), func(s *wssafe.Session) bool { return s.Subject() == "bob" })
	assert.Equal(t, 1, n)
	assert.Equal(t, "bob only", readText(t, bob))
	// Alice got nothing: her next message is the echo.
	echoOnce(t, alice, "ping")
}

// Shutdown reaches every live session through the Hub, then refuses
// handshakes with 503.
func TestShutdownDrivesHub(t *testing.T) {
	t.Parallel()
	ep, url := server(t, echo, nil)
	conns := []*websocket.Conn{dialWith(t, url, nil), dialWith(t, url, nil)}
	require.Eventually(t, func() bool { return len(ep.Hub().Sessions()) == 2 }, 5*time.Second, 10*time.Millisecond)

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- ep.Shutdown(ctx)
	}()
	for _, c := range conns {
		assert.Equal(t, websocket.StatusGoingAway, readClose(t, c).Code)
	}
	require.NoError(t, <-done)
	assert.Empty(t, ep.Hub().Sessions())
	resp := dialRefused(t, url, nil)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.NotEmpty(t, resp.Header.Get("Retry-After"))
	st := ep.Stats()
	assert.Equal(t, 0, st.Active)
	assert.Equal(t, uint64(2), st.Closed[wssafe.StatusGoingAway])
	assert.Equal(t, uint64(1), st.Refused[wssafe.EventShuttingDown])
}
