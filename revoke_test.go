package wssafe_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe"
)

// lifetime is the MaxTokenLifetime of these tests.
const lifetime = 10 * time.Minute

// revoking is f.options with MaxTokenLifetime and in-band refresh.
func revoking(f *authFixture) *wssafe.Options {
	return f.options(func(a *wssafe.AuthOptions) {
		a.MaxTokenLifetime = lifetime
		a.AllowRefresh = true
	})
}

// issued mints a token for subject issued now (iat) for d.
func (f *authFixture) issued(subject string, d time.Duration) string {
	now := f.clock.Now()
	return f.token(claims{"sub": subject, "iat": now, "exp": now.Add(d)})
}

// closedWith expects the connection to end with code and reason.
func closedWith(t *testing.T, c *websocket.Conn, code wssafe.StatusCode, reason string) {
	t.Helper()
	ce := readClose(t, c)
	assert.Equal(t, code, ce.Code)
	assert.Equal(t, reason, ce.Reason)
}

// MaxTokenLifetime refuses a token whose exp is further than the lifetime
// (plus the skew) from its iat, or from now without iat; it needs exp.
func TestMaxTokenLifetime(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	_, url := f.server(t, whoami, f.options(func(a *wssafe.AuthOptions) {
		a.MaxTokenLifetime = lifetime
		a.AcceptableSkew = 30 * time.Second
	}))
	now := f.clock.Now()
	for name, c := range map[string]claims{
		"iat, exp at the lifetime plus skew": {"iat": now, "exp": now.Add(lifetime + 30*time.Second)},
		"iat in the past, exp near":          {"iat": now.Add(-5 * time.Minute), "exp": now.Add(5 * time.Minute)},
		"no iat, exp within the lifetime":    {"exp": now.Add(lifetime)},
	} {
		c := dial(t, url, bearer(f.token(c)))
		assert.Equal(t, "alice|alice|in", roundTrip(t, c, "in"), name)
	}
	for name, c := range map[string]claims{
		"iat, exp beyond":    {"iat": now, "exp": now.Add(lifetime + 31*time.Second)},
		"old iat, long life": {"iat": now.Add(-time.Hour), "exp": now.Add(time.Minute)},
		"no iat, exp beyond": {"exp": now.Add(lifetime + 31*time.Second)},
	} {
		f.refusedAtHandshake(url, name, f.token(c), "lifetime")
	}
	c := dial(t, url, nil)
	sendMsg(t, c, websocket.MessageText, f.token(claims{"iat": now, "exp": now.Add(time.Hour)}))
	closedWith(t, c, wssafe.StatusUnauthorized, "invalid token")

	_, err := wssafe.New(echo, f.options(func(a *wssafe.AuthOptions) {
		a.MaxTokenLifetime = lifetime
		a.InsecureAllowMissingExp = true
	}))
	assert.ErrorContains(t, err, "MaxTokenLifetime")
	_, err = wssafe.New(echo, f.options(func(a *wssafe.AuthOptions) { a.MaxTokenLifetime = -1 }))
	assert.Error(t, err)
}

// CloseSubject with MaxTokenLifetime revokes on a single node: the
// subject's tokens issued before it, and those without iat, are refused at
// the handshake, from the first message and on refresh, until the record
// expires; later tokens and other subjects pass.
func TestRevocationSingleNode(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	ep, url := f.server(t, whoami, revoking(f))
	old := f.issued("alice", lifetime)
	bobOld := f.issued("bob", lifetime)
	alice := dial(t, url, bearer(old))
	roundTrip(t, alice, "in")

	f.clock.Advance(500 * time.Millisecond) // the revocation comes after the old tokens' iat
	require.NoError(t, ep.Hub().CloseSubject("alice", nil))
	closedWith(t, alice, wssafe.StatusForbidden, "forbidden")
	noIat := f.token(claims{"exp": f.clock.Now().Add(time.Minute)})
	f.refusedAtHandshake(url, "issued before", old, "revoked")
	f.refusedAtHandshake(url, "no iat", noIat, "revoked")
	resp := handshake(t, url, bearer(old))
	assert.Equal(t, `Bearer error="invalid_token"`, resp.Header.Get("WWW-Authenticate"))
	first := dial(t, url, nil)
	sendMsg(t, first, websocket.MessageText, old)
	closedWith(t, first, wssafe.StatusUnauthorized, "invalid token")
	bob := dial(t, url, bearer(bobOld))
	assert.Equal(t, "bob|bob|other subjects pass", roundTrip(t, bob, "other subjects pass"))

	// A token issued after the revocation (iat has whole seconds) opens;
	// refreshing it with an old token is refused.
	f.clock.Advance(time.Second)
	fresh := dial(t, url, bearer(f.issued("alice", lifetime)))
	assert.Equal(t, "alice|alice|fresh", roundTrip(t, fresh, "fresh"))
	sendMsg(t, fresh, websocket.MessageText, `{"type":"refresh","token":"`+old+`"}`)
	closedWith(t, fresh, wssafe.StatusUnauthorized, "invalid token")
	assert.Equal(t, uint64(5), ep.Stats().AuthFailed["revoked"])

	// The record lasts MaxTokenLifetime (AcceptableSkew is zero here).
	later := f.token(claims{"exp": f.clock.Now().Add(lifetime)})
	f.refusedAtHandshake(url, "no iat, within the record", later, "revoked")
	f.clock.Advance(lifetime)
	noIat = f.token(claims{"exp": f.clock.Now().Add(time.Minute)})
	c := dial(t, url, bearer(noIat))
	assert.Equal(t, "alice|alice|expired record", roundTrip(t, c, "expired record"))
}

// A revocation reaches every node: those up at once, one that was cut off
// when it recovers, one started later from the stored records. A revoke
// closes only the sessions that hold a token it refuses.
func TestRevocationAcrossNodes(t *testing.T) {
	t.Parallel()
	c := newFakeCluster()
	f := newAuthFixture(t)
	ep1, url1, _ := c.node(t, f, "n1", revoking(f))
	_, url2, bp2 := c.node(t, f, "n2", revoking(f))
	old := f.issued("alice", lifetime)
	carolOld := f.issued("carol", lifetime)
	a1 := dial(t, url1, bearer(old))
	a2 := dial(t, url2, bearer(old))
	roundTrip(t, a1, "echo in")
	roundTrip(t, a2, "echo in")

	// A revoke that only refuses older tokens leaves alice's session be.
	before := f.clock.Now()
	bp2.node.Control(wssafe.ControlOp{Kind: wssafe.ControlRevoke, Subject: "alice", Before: before.Add(-time.Second), TTL: lifetime})
	echoOnce(t, a2, "still open")

	f.clock.Advance(500 * time.Millisecond)
	require.NoError(t, ep1.Hub().CloseSubject("alice", &wssafe.CloseError{Code: 4001, Reason: "logged out"}))
	closedWith(t, a1, 4001, "logged out")
	closedWith(t, a2, 4001, "logged out")
	f.refusedAtHandshake(url2, "revoked on the other node", old, "revoked")

	// Cut off: n2 learns carol's revocation when the broker comes back.
	c.setDown(true)
	f.clock.Advance(500 * time.Millisecond)
	require.NoError(t, ep1.Hub().CloseSubject("carol", nil))
	f.refusedAtHandshake(url1, "revoked here at once", carolOld, "revoked")
	carol := dial(t, url2, bearer(carolOld))
	echoOnce(t, carol, "n2 has not heard")
	c.setDown(false)
	closedWith(t, carol, wssafe.StatusForbidden, "forbidden")
	f.refusedAtHandshake(url2, "learnt on recovery", carolOld, "revoked")

	// Started later: the stored records are loaded at Start.
	_, url3, _ := c.node(t, f, "n3", revoking(f))
	f.refusedAtHandshake(url3, "started after alice's revocation", old, "revoked")
	f.refusedAtHandshake(url3, "started after carol's revocation", carolOld, "revoked")
	resp := handshake(t, url3, bearer(old))
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	echoOnce(t, dial(t, url3, bearer(f.issued("bob", lifetime))), "bob is not revoked")
}
