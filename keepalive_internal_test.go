package wssafe

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// A keepalive ping that starts as the session ends must not take the
// connection down with it: the close handshake that follows still sends
// its close frame. coder/websocket closes the connection when the context
// of a write in progress ends, so the ping's context is not the session's.
func TestKeepaliveAtTheEndLeavesTheCloseFrame(t *testing.T) {
	sessions := make(chan *Session, 1)
	ep, err := New(HandlerFunc(func(context.Context, *Session, Message) error { return nil }),
		&Options{OnOpen: func(s *Session) error { sessions <- s; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ep)
	defer srv.Close()
	defer ep.Shutdown(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The race it guards against is a coin toss inside coder/websocket's
	// write lock; twenty sessions lose it with certainty.
	for range 20 {
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
		if err != nil {
			t.Fatal(err)
		}
		s := <-sessions
		read := make(chan error, 1)
		go func() { _, _, err := c.Read(ctx); read <- err }() // answers the ping
		s.end(ErrForbidden)                                   // as the token's expiry or a revocation does
		s.keepalive()                                         // the ping timer fired at the same moment
		s.hangUp(ErrForbidden)
		if err := <-read; websocket.CloseStatus(err) != StatusForbidden {
			t.Fatalf("the client read %v, want the close frame 3003", err)
		}
		c.CloseNow()
	}
}
