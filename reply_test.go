package wssafe_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe"
)

// readFrame reads the next message or the close that ends the connection.
func readFrame(t *testing.T, c *websocket.Conn) (string, websocket.CloseError) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, p, err := c.Read(ctx)
	if err == nil {
		return string(p), websocket.CloseError{}
	}
	var ce websocket.CloseError
	require.ErrorAs(t, err, &ce, "connection ended without a close frame: %v", err)
	return "", ce
}

// By default the library speaks no protocol's words: an expired
// first-message token gets the close 3000 "token expired" and no text
// before it, and an accepted token no greeting.
func TestFirstMessageRepliesOffByDefault(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	_, url := server(t, echo, f.options(func(a *wssafe.AuthOptions) { a.Sources = wssafe.FromFirstMessage }))

	c := dial(t, url, nil)
	sendMsg(t, c, websocket.MessageText, f.remember(f.token(claims{"exp": f.clock.Now().Add(-time.Minute)})))
	text, ce := readFrame(t, c)
	assert.Empty(t, text, "no text before the close")
	assert.Equal(t, wssafe.StatusUnauthorized, ce.Code)
	assert.Equal(t, "token expired", ce.Reason)

	c = dial(t, url, nil)
	sendMsg(t, c, websocket.MessageText, f.token(nil))
	assert.Equal(t, "Server received: hi", roundTrip(t, c, "hi"), "the first message back is the Handler's")
}

// AuthenticatedText greets every session as it opens, before OnOpen,
// whatever the token's source; ExpiredText precedes the close of an
// expired first-message token; a session over its subject's cap gets
// neither greeting nor OnOpen.
func TestFirstMessageReplies(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	o := f.options(func(a *wssafe.AuthOptions) {
		a.AuthenticatedText = "Welcome ✓"
		a.ExpiredText = "Expired ✗"
	})
	o.MaxConnsPerSubject = 1
	o.OnOpen = func(s *wssafe.Session) error { return s.WriteText(s.Context(), "open") }
	_, url := server(t, echo, o)

	first := dial(t, url, nil)
	sendMsg(t, first, websocket.MessageText, f.token(nil))
	assert.Equal(t, "Welcome ✓", readText(t, first))
	assert.Equal(t, "open", readText(t, first))
	assert.Equal(t, "Server received: hi", roundTrip(t, first, "hi"))

	header := dial(t, url, bearer(f.token(claims{"sub": "bob"})))
	assert.Equal(t, "Welcome ✓", readText(t, header), "a handshake token is greeted too")
	assert.Equal(t, "open", readText(t, header))

	capped := dial(t, url, nil)
	sendMsg(t, capped, websocket.MessageText, f.token(nil)) // alice again, over her cap
	text, ce := readFrame(t, capped)
	assert.Empty(t, text, "refused by the cap: no greeting")
	assert.Equal(t, websocket.StatusPolicyViolation, ce.Code)

	expired := dial(t, url, nil)
	sendMsg(t, expired, websocket.MessageText, f.remember(f.token(claims{"sub": "carol", "exp": f.clock.Now().Add(-time.Minute)})))
	assert.Equal(t, "Expired ✗", readText(t, expired))
	_, ce = readFrame(t, expired)
	assert.Equal(t, wssafe.StatusUnauthorized, ce.Code)
	assert.Equal(t, "token expired", ce.Reason)

	invalid := dial(t, url, nil)
	sendMsg(t, invalid, websocket.MessageText, "not a token")
	text, ce = readFrame(t, invalid)
	assert.Empty(t, text, "only an expired token gets ExpiredText")
	assert.Equal(t, "invalid token", ce.Reason)
}

func TestFirstMessageRepliesRefusedByNew(t *testing.T) {
	t.Parallel()
	secret := make([]byte, 32)
	rand.Read(secret)
	for name, tc := range map[string]struct {
		auth wssafe.AuthOptions
		want string
	}{
		"authenticated not utf-8": {wssafe.AuthOptions{AuthenticatedText: "\xff"}, "Auth.AuthenticatedText is not valid UTF-8"},
		"expired not utf-8":       {wssafe.AuthOptions{Sources: wssafe.FromFirstMessage, ExpiredText: "\xc3"}, "Auth.ExpiredText is not valid UTF-8"},
		"expired without first":   {wssafe.AuthOptions{ExpiredText: "Token Expired"}, "add FromFirstMessage to Sources"},
	} {
		a := tc.auth
		a.HMACSecret = secret
		_, err := wssafe.New(echo, &wssafe.Options{Logger: quiet(), Auth: &a})
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), tc.want, name)
	}
}
