package wssafe

// JWKSOptions and the JWK Set, from a file or a URL refreshed in the
// background.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/lestrrat-go/httprc/v3"
	"github.com/lestrrat-go/httprc/v3/errsink"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// Defaults applied to zero-valued [JWKSOptions] fields.
const (
	DefaultJWKSRefreshInterval    = 15 * time.Minute
	DefaultJWKSMinRefreshInterval = 30 * time.Second
	DefaultJWKSStartTimeout       = 10 * time.Second
)

// JWKSOptions loads verification keys from a JWK Set (RFC 7517): set File
// or URL, not both. Every usable key must carry "alg" (the one algorithm it
// verifies) and, when the set has several keys, tokens must carry a "kid".
// Symmetric ("oct") keys and keys marked for encryption are ignored.
//
// A URL set is fetched when New runs: New fails, naming the URL, if the
// first fetch does not succeed within StartTimeout, so a wrong URL or an
// unreachable identity provider is found at deploy time. After that the set
// is refetched every RefreshInterval in the background (stopped by
// Endpoint.Shutdown), and also when a token names a kid the set lacks (key
// rotation), at most once per MinRefreshInterval so that tokens with made-up
// kids cannot make the server hammer the provider. When a refetch fails the
// last good set stays in use: tokens signed by known keys keep working,
// tokens with new kids are refused, and each failure is logged at Warn with
// event "jwks_refresh_failed".
type JWKSOptions struct {
	// File is the path of a JWK Set file, read once by New.
	File string

	// URL is the HTTPS address of a JWK Set.
	URL string

	// HTTPClient fetches URL. Zero means jwx's default client (timeout,
	// no HTTPS-to-HTTP redirects); a client you pass gets the same
	// defaults where it has none.
	HTTPClient *http.Client

	// RefreshInterval is the time between background fetches. Zero means
	// 15 minutes.
	RefreshInterval time.Duration

	// MinRefreshInterval is the shortest time between two fetches caused
	// by unknown kids, and the retry delay after a failed fetch. Zero
	// means 30 s.
	MinRefreshInterval time.Duration

	// StartTimeout bounds the first fetch in New. Zero means 10 s.
	StartTimeout time.Duration

	// InsecureAllowHTTP accepts an http:// URL, whose keys anyone on the
	// network path can replace with their own. For local development only.
	InsecureAllowHTTP bool
}

var errKeysUnavailable = errors.New("wssafe: JWK Set not available")

// keySet is a JWK Set from a file (static) or a URL (cached, refreshed).
type keySet struct {
	static     jwk.Set
	url        string
	cache      *jwk.Cache
	res        *httprc.ResourceBase[jwk.Set] // the cached URL's set; read without a round trip to the cache
	minRefresh time.Duration
	now        func() time.Time
	log        *slog.Logger

	mu   sync.Mutex // serializes on-demand refreshes
	last time.Time  // when the last fetch was started
}

func newKeySet(o *JWKSOptions, c *config) (*keySet, error) {
	ks := &keySet{now: c.clock.now, log: c.Logger, minRefresh: o.MinRefreshInterval}
	if o.RefreshInterval < 0 || o.MinRefreshInterval < 0 || o.StartTimeout < 0 {
		return nil, errors.New("wssafe: JWKS intervals must not be negative (zero means the default)")
	}
	setDefault(&ks.minRefresh, DefaultJWKSMinRefreshInterval)
	switch {
	case (o.File == "") == (o.URL == ""):
		return nil, errors.New("wssafe: JWKS needs exactly one of File and URL")
	case o.File != "":
		set, err := jwk.ReadFile(o.File)
		if err != nil {
			return nil, fmt.Errorf("wssafe: JWKS file %s: %w", o.File, err)
		}
		ks.static = set
	default:
		if err := ks.start(o); err != nil {
			return nil, err
		}
	}
	if usableKeys(ks.set()) == 0 {
		ks.shutdown(context.Background())
		return nil, errors.New(`wssafe: JWK Set has no usable key: each key needs "alg" (keys are bound to one algorithm), a public key type, and "use" absent or "sig"`)
	}
	return ks, nil
}

// start registers the URL with a jwk.Cache and waits for the first fetch.
func (ks *keySet) start(o *JWKSOptions) error {
	u, err := url.Parse(o.URL)
	if err != nil || u.Host == "" || !(u.Scheme == "https" || u.Scheme == "http" && o.InsecureAllowHTTP) {
		return fmt.Errorf("wssafe: JWKS URL %q: want an https:// URL", o.URL)
	}
	if u.Scheme == "http" {
		logEvent(context.Background(), ks.log, slog.LevelWarn, EventInsecureConfig,
			"wssafe: JWK Set fetched over plain HTTP; anyone on the path can substitute keys", slog.String("url", o.URL))
	}
	ks.url = o.URL
	failed := make(chan error, 1)
	client := httprc.NewClient(httprc.WithWorkers(2), httprc.WithErrorSink(errsink.NewFunc(func(ctx context.Context, err error) {
		ks.logRefreshError(ctx, err)
		select {
		case failed <- err:
		default:
		}
	})))
	if ks.cache, err = jwk.NewCache(context.Background(), client); err != nil {
		return fmt.Errorf("wssafe: JWKS: %w", err)
	}
	if err := ks.firstFetch(o, failed); err != nil {
		ks.shutdown(context.Background())
		return fmt.Errorf("wssafe: JWKS URL %s: first fetch failed: %w", o.URL, err)
	}
	return nil
}

func (ks *keySet) firstFetch(o *JWKSOptions, failed <-chan error) error {
	refresh, timeout := o.RefreshInterval, o.StartTimeout
	setDefault(&refresh, DefaultJWKSRefreshInterval)
	setDefault(&timeout, DefaultJWKSStartTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	opts := []jwk.RegisterOption{
		jwk.WithWaitReady(false),
		jwk.WithConstantInterval(refresh),
		jwk.WithMinInterval(ks.minRefresh),
	}
	if o.HTTPClient != nil {
		opts = append(opts, jwk.WithHTTPClient(jwk.WrapHTTPClientDefaults(o.HTTPClient)))
	}
	ks.last = ks.now()
	if err := ks.cache.Register(ctx, ks.url, opts...); err != nil {
		return err
	}
	r, err := ks.cache.LookupResource(ctx, ks.url)
	if err != nil {
		return err
	}
	ks.res = r
	ready := make(chan error, 1)
	go func() { ready <- r.Ready(ctx) }()
	select {
	case err := <-ready:
		return err
	case err := <-failed:
		return err
	}
}

func (ks *keySet) logRefreshError(ctx context.Context, err error) {
	logEvent(ctx, ks.log, slog.LevelWarn, EventJWKSRefreshFailed, "wssafe: fetching the JWK Set failed",
		slog.String("url", ks.url), slog.Any("error", err))
}

// set returns the current set, or nil before the first successful fetch.
func (ks *keySet) set() jwk.Set {
	if ks.res == nil {
		return ks.static
	}
	return ks.res.Resource()
}

// lookup returns the key for a token's alg and kid. An unknown kid causes
// one refetch, unless one was started within MinRefreshInterval.
func (ks *keySet) lookup(ctx context.Context, alg jwa.SignatureAlgorithm, kid string, hasKid bool) (jwk.Key, error) {
	key, err := pick(ks.set(), alg, kid, hasKid)
	if errors.Is(err, errUnknownKey) && hasKid && ks.cache != nil && ks.refresh(ctx) {
		key, err = pick(ks.set(), alg, kid, hasKid)
	}
	return key, err
}

// refresh refetches the set now, if the last fetch is old enough; it
// reports whether a fetch succeeded. Callers queue on the mutex, so a burst
// of unknown kids costs one fetch.
func (ks *keySet) refresh(ctx context.Context) bool {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	now := ks.now()
	if now.Sub(ks.last) < ks.minRefresh {
		return false
	}
	ks.last = now
	ctx, cancel := context.WithTimeout(ctx, DefaultJWKSStartTimeout)
	defer cancel()
	if _, err := ks.cache.Refresh(ctx, ks.url); err != nil {
		ks.logRefreshError(ctx, err)
		return false
	}
	return true
}

// pick selects the key for alg and kid: by kid when the token has one,
// else the only usable key bound to alg.
func pick(set jwk.Set, alg jwa.SignatureAlgorithm, kid string, hasKid bool) (jwk.Key, error) {
	if set == nil {
		return nil, errKeysUnavailable
	}
	if hasKid {
		key, ok := set.LookupKeyID(kid)
		if !ok || !usable(key, alg) {
			return nil, errUnknownKey
		}
		return key, nil
	}
	var found jwk.Key
	for i := range set.Len() {
		if key, _ := set.Key(i); usable(key, alg) {
			if found != nil {
				return nil, errUnknownKey // several candidates: a kid is required
			}
			found = key
		}
	}
	if found == nil {
		return nil, errUnknownKey
	}
	return found, nil
}

// usable reports whether key may verify alg: a public key type, meant for
// signatures, and bound by its own "alg" to exactly alg.
func usable(key jwk.Key, alg jwa.SignatureAlgorithm) bool {
	if key == nil || key.KeyType() == jwa.OctetSeq() || jwk.IsUnsupportedKey(key) {
		return false
	}
	if use, ok := key.KeyUsage(); ok && use != "" && use != jwk.ForSignature.String() {
		return false
	}
	ka, ok := key.Algorithm()
	return ok && ka.String() == alg.String() && alg != jwa.NoSignature()
}

func usableKeys(set jwk.Set) int {
	if set == nil {
		return 0
	}
	n := 0
	for i := range set.Len() {
		key, _ := set.Key(i)
		if ka, ok := key.Algorithm(); ok {
			if alg, ok := jwa.LookupSignatureAlgorithm(ka.String()); ok && !alg.IsSymmetric() && usable(key, alg) {
				n++
			}
		}
	}
	return n
}

func (ks *keySet) shutdown(ctx context.Context) {
	if ks.cache != nil {
		ks.cache.Shutdown(ctx)
	}
}
