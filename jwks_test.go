package wssafe_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe"
)

// signingKey is an EC key and its ID, as an identity provider holds it.
type signingKey struct {
	kid  string
	priv *ecdsa.PrivateKey
}

func newSigningKey(t *testing.T, kid string) signingKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return signingKey{kid: kid, priv: k}
}

// publicJWK is the key as published: public half, kid, alg, use.
func (k signingKey) publicJWK(t *testing.T, set map[string]any) jwk.Key {
	t.Helper()
	key, err := jwk.Import(&k.priv.PublicKey)
	require.NoError(t, err)
	require.NoError(t, key.Set(jwk.KeyIDKey, k.kid))
	require.NoError(t, key.Set(jwk.AlgorithmKey, jwa.ES256()))
	require.NoError(t, key.Set(jwk.KeyUsageKey, "sig"))
	for name, v := range set {
		if v == nil {
			require.NoError(t, key.Remove(name))
		} else {
			require.NoError(t, key.Set(name, v))
		}
	}
	return key
}

func jwksJSON(t *testing.T, keys ...jwk.Key) []byte {
	t.Helper()
	set := jwk.NewSet()
	for _, k := range keys {
		require.NoError(t, set.AddKey(k))
	}
	b, err := json.Marshal(set)
	require.NoError(t, err)
	return b
}

func (f *authFixture) signES(k signingKey, c claims) string {
	hdr := map[string]any{}
	if k.kid != "" {
		hdr["kid"] = k.kid
	}
	return f.sign(jwa.ES256(), k.priv, f.claims(c), hdr)
}

// jwksServer is an HTTPS identity provider whose key set and health the
// test controls.
type jwksServer struct {
	*httptest.Server
	body    atomic.Value // []byte
	down    atomic.Bool
	fetches atomic.Int32
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	s := &jwksServer{}
	s.body.Store(body)
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		if s.down.Load() {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(s.body.Load().([]byte))
	}))
	t.Cleanup(s.Close)
	return s
}

// quiet is a logger for endpoints whose logs the test does not read.
func quiet() *slog.Logger {
	l, _ := newLogger()
	return l
}

func (f *authFixture) jwksOptions(j *wssafe.JWKSOptions) *wssafe.Options {
	return f.options(func(a *wssafe.AuthOptions) {
		a.HMACSecret = nil
		a.JWKS = j
	})
}

func TestJWKSFile(t *testing.T) {
	t.Parallel()
	k1, k2, k3 := newSigningKey(t, "k1"), newSigningKey(t, "k2"), newSigningKey(t, "k3")
	noAlg := newSigningKey(t, "no-alg")
	path := filepath.Join(t.TempDir(), "jwks.json")
	require.NoError(t, os.WriteFile(path, jwksJSON(t,
		k1.publicJWK(t, nil),
		k3.publicJWK(t, nil),
		k2.publicJWK(t, map[string]any{jwk.KeyUsageKey: "enc"}), // not for signatures
		noAlg.publicJWK(t, map[string]any{jwk.AlgorithmKey: nil}),
	), 0o600))

	f := newAuthFixture(t)
	_, url := f.server(t, whoami, f.jwksOptions(&wssafe.JWKSOptions{File: path}))
	for _, k := range []signingKey{k1, k3} {
		c := dial(t, url, bearer(f.signES(k, nil)))
		assert.Equal(t, "alice|alice|x", roundTrip(t, c, "x"))
	}

	for name, tok := range map[string]string{
		"enc key":              f.signES(k2, nil),
		"key without alg":      f.signES(noAlg, nil),
		"unknown kid":          f.signES(signingKey{kid: "k9", priv: k1.priv}, nil),
		"no kid, several keys": f.signES(signingKey{priv: k1.priv}, nil),
	} {
		resp := handshake(t, url, bearer(tok))
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, name)
	}
	assert.Contains(t, f.logs.String(), `"reason":"unknown_key"`)
}

func TestJWKSFileSingleKeyNeedsNoKid(t *testing.T) {
	t.Parallel()
	k := newSigningKey(t, "only")
	path := filepath.Join(t.TempDir(), "jwks.json")
	require.NoError(t, os.WriteFile(path, jwksJSON(t, k.publicJWK(t, nil)), 0o600))
	f := newAuthFixture(t)
	_, url := f.server(t, whoami, f.jwksOptions(&wssafe.JWKSOptions{File: path}))
	c := dial(t, url, bearer(f.signES(signingKey{priv: k.priv}, nil)))
	assert.Equal(t, "alice|alice|x", roundTrip(t, c, "x"))
}

func TestJWKSRefusesUnusableSets(t *testing.T) {
	t.Parallel()
	k := newSigningKey(t, "k")
	secret, err := jwk.Import(make([]byte, 32))
	require.NoError(t, err)
	require.NoError(t, secret.Set(jwk.AlgorithmKey, jwa.HS256()))
	dir := t.TempDir()
	for name, body := range map[string][]byte{
		"no alg":   jwksJSON(t, k.publicJWK(t, map[string]any{jwk.AlgorithmKey: nil})),
		"oct only": jwksJSON(t, secret),
		"empty":    []byte(`{"keys":[]}`),
		"not jwks": []byte(`<html>`),
	} {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, body, 0o600))
		_, err := wssafe.New(echo, &wssafe.Options{Logger: quiet(), Auth: &wssafe.AuthOptions{JWKS: &wssafe.JWKSOptions{File: path}}})
		assert.Error(t, err, name)
	}
}

func TestJWKSURLRotation(t *testing.T) {
	t.Parallel()
	k1, k2, k3 := newSigningKey(t, "k1"), newSigningKey(t, "k2"), newSigningKey(t, "k3")
	idp := newJWKSServer(t, jwksJSON(t, k1.publicJWK(t, nil)))
	f := newAuthFixture(t)
	_, url := f.server(t, whoami, f.jwksOptions(&wssafe.JWKSOptions{URL: idp.URL, HTTPClient: idp.Client()}))
	require.EqualValues(t, 1, idp.fetches.Load(), "the set is fetched once at start")

	c := dial(t, url, bearer(f.signES(k1, nil)))
	assert.Equal(t, "alice|alice|x", roundTrip(t, c, "x"))

	// The provider rotates to k2. Right after a fetch, an unknown kid does
	// not cause another one (MinRefreshInterval guards against storms).
	idp.body.Store(jwksJSON(t, k2.publicJWK(t, nil)))
	resp := handshake(t, url, bearer(f.signES(k2, nil)))
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.EqualValues(t, 1, idp.fetches.Load())

	f.clock.Advance(wssafe.DefaultJWKSMinRefreshInterval)
	c = dial(t, url, bearer(f.signES(k2, nil)))
	assert.Equal(t, "alice|alice|y", roundTrip(t, c, "y"))
	assert.EqualValues(t, 2, idp.fetches.Load())

	// A burst of made-up kids costs nothing until the interval has passed.
	for range 5 {
		resp := handshake(t, url, bearer(f.signES(k3, nil)))
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	}
	assert.EqualValues(t, 2, idp.fetches.Load())
	assert.Contains(t, f.logs.String(), `"reason":"unknown_key"`)
}

func TestJWKSURLDownAtStart(t *testing.T) {
	t.Parallel()
	k := newSigningKey(t, "k")
	t.Run("unreachable", func(t *testing.T) {
		t.Parallel()
		idp := newJWKSServer(t, jwksJSON(t, k.publicJWK(t, nil)))
		client := idp.Client()
		idp.Close()
		start := time.Now()
		_, err := wssafe.New(echo, &wssafe.Options{Logger: quiet(), Auth: &wssafe.AuthOptions{JWKS: &wssafe.JWKSOptions{URL: idp.URL, HTTPClient: client}}})
		require.Error(t, err)
		assert.Contains(t, err.Error(), idp.URL)
		assert.Contains(t, err.Error(), "first fetch failed")
		assert.Less(t, time.Since(start), wssafe.DefaultJWKSStartTimeout, "a refused connection fails fast")
	})
	t.Run("error status", func(t *testing.T) {
		t.Parallel()
		idp := newJWKSServer(t, nil)
		idp.down.Store(true)
		_, err := wssafe.New(echo, &wssafe.Options{Logger: quiet(), Auth: &wssafe.AuthOptions{JWKS: &wssafe.JWKSOptions{URL: idp.URL, HTTPClient: idp.Client()}}})
		require.ErrorContains(t, err, "first fetch failed")
	})
	t.Run("hanging", func(t *testing.T) {
		t.Parallel()
		block := make(chan struct{})
		idp := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-block:
			case <-r.Context().Done():
			}
		}))
		defer idp.Close()
		defer close(block)
		_, err := wssafe.New(echo, &wssafe.Options{Logger: quiet(), Auth: &wssafe.AuthOptions{JWKS: &wssafe.JWKSOptions{
			URL: idp.URL, HTTPClient: idp.Client(), StartTimeout: 200 * time.Millisecond,
		}}})
		require.ErrorIs(t, err, context.DeadlineExceeded)
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		t.Parallel()
		idp := newJWKSServer(t, jwksJSON(t, k.publicJWK(t, nil)))
		_, err := wssafe.New(echo, &wssafe.Options{Logger: quiet(), Auth: &wssafe.AuthOptions{JWKS: &wssafe.JWKSOptions{URL: idp.URL}}})
		require.ErrorContains(t, err, "first fetch failed")
	})
}

func TestJWKSURLDownLater(t *testing.T) {
	t.Parallel()
	k1, k2 := newSigningKey(t, "k1"), newSigningKey(t, "k2")
	idp := newJWKSServer(t, jwksJSON(t, k1.publicJWK(t, nil)))
	f := newAuthFixture(t)
	_, url := f.server(t, whoami, f.jwksOptions(&wssafe.JWKSOptions{URL: idp.URL, HTTPClient: idp.Client()}))

	idp.down.Store(true)
	f.clock.Advance(wssafe.DefaultJWKSMinRefreshInterval)
	// A new kid triggers a fetch, which fails: the token is refused ...
	resp := handshake(t, url, bearer(f.signES(k2, nil)))
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.EqualValues(t, 2, idp.fetches.Load())
	assert.Contains(t, f.logs.String(), `"event":"jwks_refresh_failed"`)
	// ... and the last good set stays in use.
	c := dial(t, url, bearer(f.signES(k1, nil)))
	assert.Equal(t, "alice|alice|x", roundTrip(t, c, "x"))
}

func TestJWKSPlainHTTPOptIn(t *testing.T) {
	t.Parallel()
	k := newSigningKey(t, "k")
	body := jwksJSON(t, k.publicJWK(t, nil))
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	defer idp.Close()
	f := newAuthFixture(t)
	_, url := f.server(t, whoami, f.jwksOptions(&wssafe.JWKSOptions{URL: idp.URL, InsecureAllowHTTP: true}))
	assert.Contains(t, f.logs.String(), "plain HTTP")
	c := dial(t, url, bearer(f.signES(k, nil)))
	assert.Equal(t, "alice|alice|x", roundTrip(t, c, "x"))
}

func TestJWKSWithHMACSecret(t *testing.T) {
	t.Parallel()
	k := newSigningKey(t, "k")
	idp := newJWKSServer(t, jwksJSON(t, k.publicJWK(t, nil)))
	f := newAuthFixture(t)
	o := f.options(func(a *wssafe.AuthOptions) {
		a.JWKS = &wssafe.JWKSOptions{URL: idp.URL, HTTPClient: idp.Client()}
	})
	_, url := f.server(t, whoami, o)
	for _, tok := range []string{f.token(nil), f.signES(k, nil)} {
		c := dial(t, url, bearer(tok))
		assert.Equal(t, "alice|alice|x", roundTrip(t, c, "x"))
	}
}
