package wsotel_test

import (
	"crypto/rand"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/wssafe/wssafe"
)

// sign returns a token for sub signed with secret.
func sign(t *testing.T, secret []byte, sub string) string {
	t.Helper()
	now := time.Now()
	tok, err := jwt.NewBuilder().Subject(sub).IssuedAt(now).Expiration(now.Add(10 * time.Minute)).Build()
	if err != nil {
		t.Fatal(err)
	}
	b, err := jwt.Sign(tok, jwt.WithKey(jwa.HS256(), secret))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func bearer(tok string) *websocket.DialOptions {
	return &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}}}
}

func secret(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// A token signed with the wrong key is a refused handshake (error.type
// auth_failed) and a failed authentication (error.type signature); a good
// one an accepted handshake and a successful authentication.
func TestAuthentications(t *testing.T) {
	key := secret(t)
	e := newEnv(t, &wssafe.Options{Auth: &wssafe.AuthOptions{HMACSecret: key, Sources: wssafe.FromHeader}})
	ctx := testContext(t)

	_, resp, err := websocket.Dial(ctx, e.url, bearer(sign(t, secret(t), "alice")))
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a forged token: %v, %v; want HTTP 401", resp, err)
	}
	c := e.dial(ctx, bearer(sign(t, key, "alice")))
	e.roundTrip(ctx, c, "hi")
	if err := c.Close(websocket.StatusGoingAway, ""); err != nil {
		t.Fatal(err)
	}
	e.waitServed(ctx, 2)
	e.waitClosed(ctx, 1)

	got, _ := e.collect(ctx)
	diff(t, got, map[string]int64{
		"wssafe.server.active_sessions{}":                                                                0,
		"wssafe.server.active_handshakes{}":                                                              0,
		"wssafe.server.handshakes{wssafe.handshake.status=accepted}":                                     1,
		"wssafe.server.handshakes{error.type=auth_failed,wssafe.handshake.status=refused}":               1,
		"wssafe.server.opened_sessions{}":                                                                1,
		"wssafe.server.closed_sessions{wssafe.close.code=1001,wssafe.close.status=going_away}":           1,
		"wssafe.server.authentications{wssafe.auth.status=succeeded}":                                    1,
		"wssafe.server.authentications{error.type=signature,wssafe.auth.status=failed}":                  1,
		"wssafe.server.panics{}":                                                                         0,
		"wssafe.server.messages{network.io.direction=receive}":                                           1,
		"wssafe.server.messages{network.io.direction=transmit}":                                          1,
		"wssafe.server.io{network.io.direction=receive}":                                                 2,
		"wssafe.server.io{network.io.direction=transmit}":                                                2,
		"wssafe.server.dropped_messages{}":                                                               0,
		"wssafe.server.suppressed_log_records{}":                                                         0,
		"wssafe.server.session.duration{wssafe.close.code=1001,wssafe.close.status=going_away} count":    1,
		"wssafe.server.handler.duration{} count":                                                         1,
		"wssafe.server.message.size{} count":                                                             1,
		"wssafe.server.message.size{} sum":                                                               2,
		"wssafe.server.handshake.duration{wssafe.handshake.status=accepted} count":                       1,
		"wssafe.server.handshake.duration{error.type=auth_failed,wssafe.handshake.status=refused} count": 1,
	})
}
