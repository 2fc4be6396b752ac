// Package benchjwt holds the keys and tokens of the authentication
// benchmarks: one key per algorithm, made fresh by New, and tokens signed
// with them by jwx. The HS256 secret is a fixed, obviously-fake value so
// that the load tool and the server it starts (two processes) agree on it
// without passing it around; it protects nothing.
package benchjwt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/wssafe/wssafe"
)

// Secret is the HS256 secret of the benchmarks: 48 bytes, not random, and
// never to be used anywhere else.
var Secret = []byte("wssafe-benchmark-only-hmac-secret-not-a-real-one")

// Algorithms are the algorithms benchmarked, in report order.
var Algorithms = []string{"HS256", "RS256", "ES256", "EdDSA"}

// A Key signs tokens with one algorithm and configures an endpoint to
// verify them.
type Key struct {
	Alg    jwa.SignatureAlgorithm
	signer any              // what jwt.Sign takes
	public crypto.PublicKey // nil for HMAC
}

// New returns the key for alg (one of Algorithms): the fixed secret for
// HS256, a fresh RSA 2048, P-256 or Ed25519 key otherwise.
func New(alg string) (*Key, error) {
	switch alg {
	case "HS256":
		return &Key{Alg: jwa.HS256(), signer: Secret}, nil
	case "RS256":
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		return &Key{Alg: jwa.RS256(), signer: k, public: &k.PublicKey}, nil
	case "ES256":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		return &Key{Alg: jwa.ES256(), signer: k, public: &k.PublicKey}, nil
	case "EdDSA":
		pub, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		return &Key{Alg: jwa.EdDSA(), signer: k, public: pub}, nil
	}
	return nil, fmt.Errorf("benchjwt: unknown algorithm %q (want one of %v)", alg, Algorithms)
}

// Auth returns AuthOptions that verify this key's tokens sent as the first
// message, a first-message protocol.
func (k *Key) Auth() *wssafe.AuthOptions {
	a := &wssafe.AuthOptions{Sources: wssafe.FromFirstMessage}
	if k.public == nil {
		a.HMACSecret = Secret
	} else {
		a.PublicKeys = []wssafe.PublicKey{{Key: k.public, Algorithm: k.Alg}}
	}
	return a
}

// Token returns a compact JWT for subject, valid for an hour.
func (k *Key) Token(subject string) ([]byte, error) {
	tok, err := jwt.NewBuilder().Subject(subject).Expiration(time.Now().Add(time.Hour)).Build()
	if err != nil {
		return nil, err
	}
	return jwt.Sign(tok, jwt.WithKey(k.Alg, k.signer))
}
