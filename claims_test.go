package wssafe_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe"
)

// signPayload signs payload exactly as given (HS256, the fixture's secret)
// with jwx: jwt.Sign would re-encode a string date as a number.
func (f *authFixture) signPayload(key []byte, payload string) string {
	f.t.Helper()
	b, err := jws.Sign([]byte(payload), jws.WithKey(jwa.HS256(), key))
	require.NoError(f.t, err)
	return f.remember(string(b))
}

// claimRefusal is a token refused for one claim: the reason and the claim
// the log names, and the error_description of the 401.
type claimRefusal struct {
	name, reason, claim, desc string
	token                     func(f *authFixture) string
}

// A token refused for a missing claim names it in the log (reason
// missing_claim, attribute claim) and in the 401's error_description; a
// first-message token still closes with the fixed "invalid token".
func TestAuthMissingClaimNamed(t *testing.T) {
	t.Parallel()
	mutate := func(a *wssafe.AuthOptions) {
		a.Issuer = "https://issuer.example"
		a.Audience = "wssafe-test"
		a.RequiredClaims = []string{"iat", "jti"}
	}
	good := func(f *authFixture) claims {
		return claims{"iss": "https://issuer.example", "aud": "wssafe-test", "jti": "1", "iat": f.clock.Now().Add(-time.Minute)}
	}
	without := func(name string) func(f *authFixture) string {
		return func(f *authFixture) string {
			c := good(f)
			c[name] = nil
			return f.token(c)
		}
	}
	missing := func(name string) claimRefusal {
		return claimRefusal{"no " + name, "missing_claim", name, "missing " + name + " claim", without(name)}
	}
	cases := []claimRefusal{missing("exp"), missing("sub"), missing("iat"), missing("jti"), missing("iss"), missing("aud")}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newAuthFixture(t)
			_, url := f.server(t, whoami, f.options(mutate))
			c := dial(t, url, bearer(f.token(good(f)))) // the rest is right
			assert.Equal(t, "alice|alice|x", roundTrip(t, c, "x"))
			f.refusedForClaim(url, tc)
		})
		t.Run(tc.name+" first message", func(t *testing.T) {
			t.Parallel()
			f := newAuthFixture(t)
			_, url := f.server(t, whoami, f.options(mutate))
			f.closedForClaim(url, tc)
		})
	}
}

// The subject's claims are named all together when none is present, the
// first unusable one when one is present but empty or of another type; a
// required claim of the application's own ParseOptions is missing without
// a name (jwx gives none but in its text), as is one whose name RFC 6750
// does not allow in an error_description (it is still logged).
func TestAuthMissingClaimNamedVariants(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	_, url := f.server(t, whoami, everyLine(f.options(func(a *wssafe.AuthOptions) {
		a.SubjectClaims = []string{"user_id", "sub"}
		a.RequiredClaims = []string{`a"b`}
		a.ParseOptions = []jwt.ParseOption{jwt.WithRequiredClaim("tenant")}
	})))
	all := claims{`a"b`: 1, "tenant": "acme"}
	with := func(kv ...any) claims {
		c := claims{}
		for kk, vv := range all {
			c[kk] = vv
		}
		for i := 0; i < len(kv); i += 2 {
			c[kv[i].(string)] = kv[i+1]
		}
		return c
	}
	for _, tc := range []struct {
		name, tok, reason, claim, desc string
	}{
		{"no subject claim", f.token(with("sub", nil)), "missing_claim", "user_id or sub", "missing user_id or sub claim"},
		{"subject of another type", f.token(with("user_id", true, "sub", nil)), "invalid_claim", "user_id", "invalid user_id claim"},
		{"empty subject", f.token(with("user_id", "", "sub", "")), "invalid_claim", "user_id", "invalid user_id claim"},
		{"application's own claim", f.token(with("tenant", nil)), "missing_claim", "", "missing required claim"},
		{"unsafe claim name", f.token(with(`a"b`, nil)), "missing_claim", `a\"b`, "missing required claim"},
	} {
		resp := handshake(t, url, bearer(tc.tok))
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, tc.name)
		assert.Equal(t, `Bearer error="invalid_token", error_description="`+tc.desc+`"`, resp.Header.Get("WWW-Authenticate"), tc.name)
		line := lastAuthFailure(t, f.logs)
		assert.Contains(t, line, `"reason":"`+tc.reason+`"`, tc.name)
		if tc.claim != "" {
			assert.Contains(t, line, `"claim":"`+tc.claim+`"`, tc.name)
		} else {
			assert.NotContains(t, line, `"claim"`, tc.name)
		}
	}
	c := dial(t, url, bearer(f.token(with("user_id", true)))) // an unusable user_id, then sub
	assert.Equal(t, "alice|alice|x", roundTrip(t, c, "x"))
}

// A forged token learns nothing about claims: without a valid signature
// the reason is the signature, whatever the payload lacks or holds.
func TestAuthClaimReasonsNeedSignature(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	_, url := f.server(t, whoami, everyLine(f.options(nil)))
	other := []byte(strings.Repeat("k", 32))
	for name, tok := range map[string]string{
		"no exp":      f.sign(jwa.HS256(), other, f.claims(claims{"exp": nil}), nil),
		"no sub":      f.sign(jwa.HS256(), other, f.claims(claims{"sub": nil}), nil),
		"string exp":  f.signPayload(other, `{"sub":"alice","exp":"9999999999"}`),
		"boolean iat": f.signPayload(other, `{"sub":"alice","exp":9999999999,"iat":true}`),
	} {
		resp := handshake(t, url, bearer(tok))
		assert.Equal(t, `Bearer error="invalid_token"`, resp.Header.Get("WWW-Authenticate"), name)
		line := lastAuthFailure(t, f.logs)
		assert.Contains(t, line, `"reason":"signature"`, name)
		assert.NotContains(t, line, `"claim"`, name)
	}
}

// exp, nbf and iat must be JSON numbers (RFC 7519 NumericDate) in [0,
// 9999-12-31]: jwx reads "9999999999" as a date, so wssafe refuses it
// itself, at the handshake and in a first message, also with
// InsecureAllowMissingExp (an exp that is present is checked).
func TestAuthNumericDates(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	now := f.clock.Now().Unix()
	exp := now + 3600
	bad := []struct{ name, claim, payload string }{
		{"string exp", "exp", fmt.Sprintf(`{"sub":"alice","exp":"%d"}`, exp)},
		{"string exp in the past", "exp", `{"sub":"alice","exp":"0"}`},
		{"rfc3339 exp", "exp", `{"sub":"alice","exp":"9999-01-01T00:00:00Z"}`},
		{"boolean exp", "exp", `{"sub":"alice","exp":true}`},
		{"null exp", "exp", `{"sub":"alice","exp":null}`},
		{"object exp", "exp", `{"sub":"alice","exp":{"n":1}}`},
		{"array exp", "exp", fmt.Sprintf(`{"sub":"alice","exp":[%d]}`, exp)},
		{"negative exp", "exp", `{"sub":"alice","exp":-1}`},
		{"exp after 9999", "exp", `{"sub":"alice","exp":253402300800}`},
		{"exp overflowing float64", "exp", `{"sub":"alice","exp":1e400}`},
		{"string nbf", "nbf", fmt.Sprintf(`{"sub":"alice","exp":%d,"nbf":"%d"}`, exp, now)},
		{"boolean nbf", "nbf", fmt.Sprintf(`{"sub":"alice","exp":%d,"nbf":false}`, exp)},
		{"string iat", "iat", fmt.Sprintf(`{"sub":"alice","exp":%d,"iat":"%d"}`, exp, now)},
		{"null iat", "iat", fmt.Sprintf(`{"sub":"alice","exp":%d,"iat":null}`, exp)},
	}
	good := []string{
		fmt.Sprintf(`{"sub":"alice","exp":%d.5}`, exp), // fractions are NumericDates
		fmt.Sprintf(`{"sub":"alice","exp":%d,"iat":%d.25,"nbf":1.7e9}`, exp, now-10),
		`{"sub":"alice","exp":1e10}`, // exponents too (2286)
		fmt.Sprintf(`{"sub":"alice","exp":%d,"nbf":0}`, exp),
	}
	for _, missingExpOK := range []bool{false, true} {
		o := everyLine(f.options(func(a *wssafe.AuthOptions) { a.InsecureAllowMissingExp = missingExpOK }))
		var calls atomic.Int32
		_, url := f.server(t, wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
			calls.Add(1)
			return whoami(ctx, s, m)
		}), o)
		for _, tc := range bad {
			tok := f.signPayload(f.secret, tc.payload)
			f.refusedForClaim(url, claimRefusal{tc.name, "invalid_claim", tc.claim, "invalid " + tc.claim + " claim", func(*authFixture) string { return tok }})
			f.closedForClaim(url, claimRefusal{tc.name, "invalid_claim", tc.claim, "", func(*authFixture) string { return tok }})
		}
		assert.Zero(t, calls.Load())
		for _, p := range good {
			c := dial(t, url, bearer(f.signPayload(f.secret, p)))
			assert.Equal(t, "alice|alice|x", roundTrip(t, c, "x"), p)
			c.Close(websocket.StatusNormalClosure, "")
		}
	}
}

// refusedForClaim asserts that tc's token, in the Authorization header,
// is refused with 401 naming the claim, and that the log line does.
func (f *authFixture) refusedForClaim(url string, tc claimRefusal) {
	f.t.Helper()
	resp := handshake(f.t, url, bearer(tc.token(f)))
	assert.Equal(f.t, http.StatusUnauthorized, resp.StatusCode, tc.name)
	assert.Equal(f.t, `Bearer error="invalid_token", error_description="`+tc.desc+`"`, resp.Header.Get("WWW-Authenticate"), tc.name)
	line := lastAuthFailure(f.t, f.logs)
	assert.Contains(f.t, line, `"reason":"`+tc.reason+`"`, tc.name)
	assert.Contains(f.t, line, `"claim":"`+tc.claim+`"`, tc.name)
	assert.Contains(f.t, line, `"source":"header"`, tc.name)
}

// closedForClaim asserts that tc's token, as a first message, closes 3000
// with the fixed reason, and that the log line names the claim.
func (f *authFixture) closedForClaim(url string, tc claimRefusal) {
	f.t.Helper()
	c := dial(f.t, url, nil)
	sendMsg(f.t, c, websocket.MessageText, tc.token(f))
	ce := readClose(f.t, c)
	assert.Equal(f.t, wssafe.StatusUnauthorized, ce.Code, tc.name)
	assert.Equal(f.t, "invalid token", ce.Reason, tc.name)
	var line string
	require.Eventually(f.t, func() bool {
		line = lastAuthFailure(f.t, f.logs)
		return strings.Contains(line, `"source":"first_message"`)
	}, 5*time.Second, 5*time.Millisecond, tc.name)
	assert.Contains(f.t, line, `"reason":"`+tc.reason+`"`, tc.name)
	assert.Contains(f.t, line, `"claim":"`+tc.claim+`"`, tc.name)
}

// everyLine turns off the security log's rate limit, so that a test can
// assert on the line of each of many refusals from one address.
func everyLine(o *wssafe.Options) *wssafe.Options {
	o.SecurityLogInterval = -1
	return o
}

// lastAuthFailure returns the last auth_failed log line, or "".
func lastAuthFailure(t *testing.T, logs *logBuffer) string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], `"event":"auth_failed"`) {
			return lines[i]
		}
	}
	return ""
}

// A sub, iss, jti or aud of another type than RFC 7519's string (aud: or
// array of strings) is refused naming the claim, at the handshake and in a
// first message, rather than as a malformed token; a null sub, iss or jti
// is absent, as jwx reads it.
func TestAuthStringClaimTypes(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	exp := f.clock.Now().Unix() + 3600
	_, url := server(t, whoami, everyLine(f.options(nil)))
	for _, tc := range []struct{ name, claim, payload string }{
		{"numeric sub", "sub", fmt.Sprintf(`{"sub":5,"exp":%d}`, exp)},
		{"array sub", "sub", fmt.Sprintf(`{"sub":["alice"],"exp":%d}`, exp)},
		{"boolean sub", "sub", fmt.Sprintf(`{"sub":true,"exp":%d}`, exp)},
		{"numeric iss", "iss", fmt.Sprintf(`{"sub":"alice","iss":5,"exp":%d}`, exp)},
		{"numeric jti", "jti", fmt.Sprintf(`{"sub":"alice","jti":5,"exp":%d}`, exp)},
		{"numeric aud", "aud", fmt.Sprintf(`{"sub":"alice","aud":5,"exp":%d}`, exp)},
		{"aud of numbers", "aud", fmt.Sprintf(`{"sub":"alice","aud":[1],"exp":%d}`, exp)},
		{"null aud", "aud", fmt.Sprintf(`{"sub":"alice","aud":null,"exp":%d}`, exp)},
	} {
		tok := f.signPayload(f.secret, tc.payload)
		f.refusedForClaim(url, claimRefusal{tc.name, "invalid_claim", tc.claim, "invalid " + tc.claim + " claim", func(*authFixture) string { return tok }})
		f.closedForClaim(url, claimRefusal{tc.name, "invalid_claim", tc.claim, "", func(*authFixture) string { return tok }})
	}
	for _, p := range []string{
		fmt.Sprintf(`{"sub":"alice","iss":null,"jti":null,"aud":[],"exp":%d}`, exp),
		fmt.Sprintf(`{"sub":"alice","aud":"x","exp":%d}`, exp),
		fmt.Sprintf(`{"sub":"alice","aud":["x","y"],"exp":%d}`, exp),
	} {
		c := dial(t, url, bearer(f.signPayload(f.secret, p)))
		assert.Equal(t, "alice|alice|x", roundTrip(t, c, "x"), p)
		c.Close(websocket.StatusNormalClosure, "")
	}
}
