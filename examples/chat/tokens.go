package main

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// issuerName is the iss and aud of the chat's tokens: the endpoint accepts
// only tokens this server minted for itself.
const issuerName = "wssafe-chat"

// issuer mints and re-mints the chat's short-lived HS256 tokens.
type issuer struct {
	secret []byte
	ttl    time.Duration
	now    func() time.Time
}

func newIssuer(secret []byte, ttl time.Duration) (*issuer, error) {
	if len(secret) < 32 {
		return nil, errors.New(secretEnv + " must be at least 32 bytes (openssl rand -base64 32)")
	}
	return &issuer{secret: secret, ttl: ttl, now: time.Now}, nil
}

// mint returns a signed token for subject with the display name as a claim.
func (i *issuer) mint(subject, name string) (string, error) {
	now := i.now()
	tok, err := jwt.NewBuilder().
		Issuer(issuerName).
		Audience([]string{issuerName}).
		Subject(subject).
		IssuedAt(now).
		Expiration(now.Add(i.ttl)).
		Claim("name", name).
		Build()
	if err != nil {
		return "", err
	}
	b, err := jwt.Sign(tok, jwt.WithKey(jwa.HS256(), i.secret))
	return string(b), err
}

// verify checks a bearer token from the Authorization header and returns
// its subject and name.
func (i *issuer) verify(r *http.Request) (subject, name string, err error) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return "", "", errors.New("no bearer token")
	}
	tok, err := jwt.ParseString(raw,
		jwt.WithKey(jwa.HS256(), i.secret),
		jwt.WithIssuer(issuerName),
		jwt.WithAudience(issuerName),
		jwt.WithClock(jwt.ClockFunc(i.now)),
	)
	if err != nil {
		return "", "", err
	}
	subject, _ = tok.Subject()
	if err := tok.Get("name", &name); err != nil || subject == "" {
		return "", "", errors.New("token without subject or name")
	}
	return subject, name, nil
}
