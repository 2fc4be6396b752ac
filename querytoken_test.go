package wssafe_test

import (
	"net/http"
	"testing"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"

	"github.com/wssafe/wssafe"
)

// A token in the query is refused however the parameter is spelled: in
// any case, with other punctuation, percent-encoded, or after a ";" that
// net/http drops but other stacks split on; even beside a valid header
// token. Parameters that merely contain "token" are left alone.
func TestAuthQueryTokenSpellings(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	_, url := f.server(t, whoami, everyLine(f.options(func(a *wssafe.AuthOptions) {
		a.Sources = wssafe.FromHeader | wssafe.FromFirstMessage
	})))
	tok := f.token(nil)
	for _, q := range []string{
		"?Access_Token=", "?TOKEN=", "?ACCESS-TOKEN=", "?access_token[]=", "?Id_Token=", "?JWT=",
		"?auth_token=", "?refresh_token=", "?bearer=", "?Authorization=",
		"?a=1;access_token=", "?a=1;Token=", "?access_token=x;a=1&b=",
		"?access%5Ftoken=", "?%61ccess_token=", "?access%5ftoken%=", "?access+token=",
		"?token&x=",
	} {
		resp := handshake(t, url+q+tok, bearer(tok))
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, q)
		assert.Equal(t, `Bearer error="invalid_token"`, resp.Header.Get("WWW-Authenticate"), q)
		line := lastAuthFailure(t, f.logs)
		assert.Contains(t, line, `"reason":"query_token"`, q)
	}
	for _, q := range []string{"?room=go", "?page_token=abc", "?tokens=3", "?x=token", "?a=1;b=2"} {
		c := dial(t, url+q, bearer(tok))
		assert.Equal(t, "alice|alice|x", roundTrip(t, c, "x"), q)
		c.Close(websocket.StatusNormalClosure, "")
	}
}

// With InsecureQueryParam the enabled name is a token source spelled
// exactly (case-sensitive, decoded once, "&"-separated, as net/http reads
// it). Another spelling of it, a pair net/http ignores, or a token under
// another name is a second token some other layer may read: refused.
func TestAuthQueryParamExact(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	_, url := f.server(t, whoami, everyLine(f.options(func(a *wssafe.AuthOptions) {
		a.Sources = wssafe.FromHeader
		a.InsecureQueryParam = "access_token"
	})))
	tok, other := f.token(nil), f.token(claims{"sub": "mallory"})
	for _, q := range []string{"?access_token=" + tok, "?access%5Ftoken=" + tok, "?room=go&access_token=" + tok} {
		c := dial(t, url+q, nil)
		assert.Equal(t, "alice|alice|x", roundTrip(t, c, "x"), q)
		c.Close(websocket.StatusNormalClosure, "")
	}
	for _, q := range []string{
		"?Access_Token=" + tok,
		"?access_token=" + tok + "&ACCESS_TOKEN=" + other,
		"?ACCESS_TOKEN=" + other + "&access_token=" + tok,
		"?x=1;access_token=" + tok,
		"?access_token=" + tok + ";x=1",
		"?access_token=" + tok + "&token=" + other,
	} {
		resp := handshake(t, url+q, nil)
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, q)
		assert.Contains(t, lastAuthFailure(t, f.logs), `"reason":"query_token"`, q)
	}
	// Two values of the exact name are ambiguous too.
	resp := handshake(t, url+"?access_token="+tok+"&access_token="+other, nil)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}
