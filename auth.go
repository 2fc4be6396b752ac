package wssafe

// AuthOptions, their resolution into the authenticator, and token
// verification with jwx.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// Defaults applied to zero-valued [AuthOptions] fields.
const (
	DefaultAuthTimeout   = 10 * time.Second
	DefaultAuthReadLimit = 8 << 10
	DefaultMaxTokenSize  = 8 << 10
	// DefaultSubprotocol is the application subprotocol an endpoint selects
	// when FromSubprotocol is enabled and Options.Subprotocols is empty.
	// A browser that sends its token as a subprotocol must also offer one
	// the server selects, or it fails the connection:
	//
	//	new WebSocket(url, ["wssafe", "bearer." + token])
	DefaultSubprotocol = "wssafe"
)

// A TokenSource is a set of places a token may be taken from.
type TokenSource uint8

// Token sources. Handshake sources are tried in this order and the first
// one present is used; a handshake that carries none is refused with 401
// unless FromFirstMessage is enabled.
const (
	// FromHeader: "Authorization: Bearer <token>" (non-browser clients).
	FromHeader TokenSource = 1 << iota
	// FromSubprotocol: a Sec-WebSocket-Protocol entry "bearer.<token>", or
	// Kubernetes style "base64url.bearer.authorization.k8s.io.<base64url
	// of the token>", for browsers, which cannot set headers. The entry is
	// never selected or echoed; see [DefaultSubprotocol].
	FromSubprotocol
	// FromCookie: the cookie named AuthOptions.CookieName. Browsers attach
	// cookies to cross-site sockets too, so the origin check is then what
	// stops cross-site WebSocket hijacking; New refuses FromCookie together
	// with InsecureSkipOriginCheck or with an origin pattern that admits
	// sites you do not own ("*", "*.com"), and an http:// page cannot
	// open a socket on an endpoint reached over TLS; see
	// [Options.OriginPatterns].
	FromCookie
	// FromFirstMessage: the compact JWT as the first text message after
	// the handshake, within AuthTimeout, for clients of a first-message
	// protocol (see AuthOptions.AuthenticatedText and ExpiredText). It is
	// used only when the handshake carries no token.
	FromFirstMessage
)

// AuthOptions configures JWT authentication (RFC 7519, verified per RFC
// 8725) with github.com/lestrrat-go/jwx/v3. Every session is bound to the
// verified subject before the Handler sees a message; the zero value of
// each field is the secure default. At least one verification key is
// required: HMACSecret, PublicKeys or JWKS.
//
// Algorithms are bound to keys, never taken from the token: "none" in any
// spelling, an algorithm no configured key is bound to (an HS256 token
// against an RSA key), an unknown "kid", and tokens carrying key material
// or key locations in their header ("jwk", "jku", "x5u", "x5c") are
// rejected, as are "crit" headers and duplicate JSON members.
type AuthOptions struct {
	// HMACSecret verifies HMAC-signed tokens with HMACAlgorithm. It must be
	// at least as long as the hash (32 bytes for HS256, RFC 7518 section
	// 3.2) or New fails; a short or guessable secret lets anyone who sees
	// one token brute-force it offline and mint tokens. New also refuses a
	// secret that is plainly not random whatever its length: fewer than 6
	// distinct bytes (32 zero bytes), a short block repeated
	// ("secretsecret..."), or a run in regular steps ("0123...", "abcd...").
	// New copies it.
	HMACSecret []byte

	// HMACAlgorithm is the one algorithm HMACSecret is bound to: HS256,
	// HS384 or HS512. Zero means HS256.
	HMACAlgorithm jwa.SignatureAlgorithm

	// InsecureAllowWeakSecret accepts an HMACSecret shorter than the
	// minimum or plainly not random, with a warning logged by New, so a
	// deployment can migrate from a weak secret (such as a published
	// example's "secret_key"). Tokens signed with a weak secret can be forged by
	// whoever cracks it.
	InsecureAllowWeakSecret bool

	// PublicKeys verify asymmetrically signed tokens, each with the one
	// algorithm it is bound to.
	PublicKeys []PublicKey

	// JWKS loads verification keys from a JWK Set (a file, or an HTTPS URL
	// kept fresh in the background).
	JWKS *JWKSOptions

	// Sources selects where tokens are taken from. Zero means FromHeader |
	// FromSubprotocol. Add FromFirstMessage for a first-message protocol.
	Sources TokenSource

	// CookieName names the cookie FromCookie reads. Required with
	// FromCookie and meaningless without it.
	CookieName string

	// InsecureQueryParam, if set, also accepts the token from this URL
	// query parameter at the handshake. Tokens in URLs end up in access
	// logs, proxy logs and browser history; wssafe never logs them, but it
	// cannot stop the rest of the stack from doing so. Zero refuses query
	// tokens: a handshake whose query carries access_token, token, jwt,
	// id_token, auth_token, refresh_token, bearer or authorization gets 401
	// at once (logged as reason "query_token"), even with a valid token
	// elsewhere, so that the leaking client is noticed. Those names match
	// in any case, with any punctuation (Access-Token, access_token[]),
	// percent-decoded, and after a ";" separator, which net/http ignores
	// but other stacks honour.
	//
	// The name set here is matched exactly (case-sensitive, decoded once,
	// "&"-separated, as net/http reads it); another spelling of it in the
	// same query, or a token under one of the names above, is a second
	// token another layer may read instead, and is refused as query_token.
	InsecureQueryParam string

	// AuthTimeout bounds the wait for a first-message token; a client that
	// sends nothing is closed with 3008. Zero means 10 s. Over a minute,
	// New logs a warning (event "insecure_config"): an unauthenticated
	// client holds its connection, and its slot under the caps, that long.
	AuthTimeout time.Duration

	// AuthReadLimit is the read limit while a session waits for its
	// first-message token; a larger first message closes with 1009.
	// Zero means 8 KiB.
	AuthReadLimit int64

	// AuthenticatedText, if set, is sent as a text message to every
	// session as it opens: once its token is verified and the session is
	// admitted under MaxConnsPerSubject, before OnOpen and before any
	// message reaches the Handler. It is the acknowledgement a
	// first-message client waits for before it sends anything else (the
	// original Python client waits for "Authenticated!", which
	// examples/secure sends); it goes to every session whatever the
	// token's source, so that one protocol serves header and subprotocol
	// clients too. It must be valid UTF-8. Zero sends nothing: the
	// client learns it is in from the first reply, or from no close.
	AuthenticatedText string

	// ExpiredText, if set, is sent as a text message to a client whose
	// first-message token has expired (a correctly signed one: a forged
	// token never gets this far), just before the close
	// 3000 "token expired"; examples/secure sends "Token Expired", which
	// the original Python client reads. It needs FromFirstMessage and must
	// be valid UTF-8. Zero sends nothing: the close reason says it.
	ExpiredText string

	// MaxTokenSize is the largest token accepted from any source, in
	// bytes. Zero means 8 KiB.
	MaxTokenSize int

	// SubjectClaims names the claims that carry the subject, tried in
	// order; the first one present with a non-empty string or an integer
	// value wins. A token with none of them is invalid. Zero means "sub".
	// Tokens that name the user in "user_id" (as the original Python
	// client's do) need []string{"user_id", "sub"}.
	SubjectClaims []string

	// Issuer, if set, must equal the token's "iss".
	Issuer string

	// Audience, if set, must be one of the token's "aud" values.
	Audience string

	// RequiredClaims lists claims that must be present (any value).
	RequiredClaims []string

	// Type, if set, must equal the token's "typ" header, compared without
	// case and without an "application/" prefix (RFC 8725 section 3.11:
	// explicit typing keeps one kind of token from being used as another),
	// e.g. "at+jwt" for RFC 9068 access tokens. Zero does not check typ.
	Type string

	// AcceptableSkew is the clock skew tolerated for exp, nbf and iat, and
	// the grace after exp before an open session is closed. Zero means
	// none.
	AcceptableSkew time.Duration

	// MaxTokenLifetime, if set, is the longest life a token may claim:
	// exp minus iat, or, for a token without iat, exp minus now, must not
	// exceed it plus AcceptableSkew, or the token is refused (HTTP 401,
	// close 3000; reason "lifetime"). Tokens must then carry exp
	// (InsecureAllowMissingExp is refused). It is what makes a revocation
	// possible: no token issued before it outlives MaxTokenLifetime, so
	// [Hub.CloseSubject] records one for that long, on every node of a
	// cluster, refusing the subject's tokens issued before it and its
	// tokens without iat. Set it to the longest lifetime your issuer
	// mints (an access token's, e.g. 15 minutes). Zero checks no
	// lifetime, and CloseSubject then closes sessions without refusing
	// the old tokens.
	MaxTokenLifetime time.Duration

	// InsecureAllowMissingExp accepts tokens without an "exp" claim (as the
	// original Python client mints them), with a warning logged by New. Such a token is valid
	// forever: a leaked one cannot be contained except by rotating the key.
	// By default a token without exp is invalid.
	InsecureAllowMissingExp bool

	// ParseOptions are passed to jwt.Parse after wssafe's own, for what
	// wssafe does not wrap (jwt.WithValidator, jwt.WithClaimValue,
	// jwt.WithKeySet ...). Options that would turn off signature
	// verification or the exp/nbf/iat checks are overridden.
	ParseOptions []jwt.ParseOption

	// AllowRefresh lets a client replace its token on an open session by
	// sending the text message
	//
	//	{"type":"refresh","token":"<compact JWT>"}
	//
	// The token is verified like the first one and must carry the same
	// subject (another subject closes 3003, an invalid token 3000); on
	// success the session's claims and expiry are replaced and the client
	// gets {"type":"refreshed","exp":<unix seconds>} ("exp" omitted for a
	// token without one). Such messages never reach the Handler. The
	// member names are matched exactly, not without case as encoding/json
	// matches struct fields: {"TYPE":"refresh","Token":...} is an ordinary
	// message for the Handler, and one that spells "type" exactly beside
	// another spelling of "type" or "token" (or a duplicate) gets an
	// invalid_message error reply, so that no two parsers disagree about
	// which message was a refresh. Zero (false) passes them to the Handler
	// like any other message.
	AllowRefresh bool

	// Authorize, if set, decides whether a verified subject may use the
	// endpoint (roles, a jti deny list ...). It runs after verification at
	// the handshake, after a first-message token and on every refresh. A
	// non-nil error refuses: HTTP 403 at the handshake, close 3003 on an
	// open session (or the code of a *CloseError it returns). ctx is the
	// handshake request's context, or the session's; claims is the token
	// being authorized (on a refresh, the new one). It must be safe for
	// concurrent use.
	Authorize func(ctx context.Context, subject string, claims jwt.Token) error
}

// A PublicKey verifies asymmetrically signed tokens with one algorithm.
type PublicKey struct {
	// Key is an *rsa.PublicKey (at least 2048 bits), *ecdsa.PublicKey or
	// ed25519.PublicKey. If nil, PEM is parsed instead.
	Key crypto.PublicKey

	// PEM holds a "PUBLIC KEY", "RSA PUBLIC KEY" or "CERTIFICATE" block.
	PEM []byte

	// Algorithm is the one algorithm the key verifies. Zero means RS256
	// for RSA, ES256, ES384 or ES512 by the curve, EdDSA for Ed25519.
	Algorithm jwa.SignatureAlgorithm

	// KeyID, if set, must equal the token's "kid" when the token has one.
	KeyID string
}

// maxQuietAuthTimeout is the longest AuthTimeout New accepts without a
// warning.
const maxQuietAuthTimeout = time.Minute

// hmacMinimum returns the shortest secret alg accepts, its hash size, and
// false for an algorithm that is not HMAC. It goes by name: a value made
// with jwa.NewSignatureAlgorithm("HS256") may differ from jwa.HS256() in
// its other fields.
func hmacMinimum(alg jwa.SignatureAlgorithm) (int, bool) {
	switch alg.String() {
	case "HS256":
		return 32, true
	case "HS384":
		return 48, true
	case "HS512":
		return 64, true
	}
	return 0, false
}

// boundKey is a key and the one algorithm it verifies.
type boundKey struct {
	alg jwa.SignatureAlgorithm
	key any // []byte or a crypto.PublicKey
	kid string
}

// authenticator is the resolved AuthOptions. It is immutable after New,
// except for the JWK Set it refreshes, and safe for concurrent use.
type authenticator struct {
	sources      TokenSource
	cookie       string
	query        string
	timeout      time.Duration
	readLimit    int64
	welcome      string // AuthenticatedText
	expiredText  string
	maxSize      int
	subjects     []string
	typ          string
	skew         time.Duration
	required     []string // claims that must be present, in the order a missing one is named
	issuer       bool     // Issuer is set: a missing "iss" is a missing claim
	audience     bool     // Audience is set: a missing "aud" is a missing claim
	refresh      bool
	authorizeFn  func(context.Context, string, jwt.Token) error
	keys         []boundKey
	jwks         *keySet
	algs         map[string]bool // header algorithms a key is bound to; nil: any but none
	parseOptions []jwt.ParseOption
	log          *slog.Logger
	jobs         chan *verifyJob // to idle verifier goroutines; see verifypool.go

	maxLifetime time.Duration    // MaxTokenLifetime; zero: unchecked (revoke.go)
	now         func() time.Time // the endpoint's clock
}

// resolveAuth validates Options.Auth and builds the authenticator.
func (c *config) resolveAuth() error {
	if c.Auth == nil {
		return nil
	}
	o := *c.Auth
	c.Auth = &o // never keep or mutate the caller's struct
	a := &authenticator{log: c.Logger, now: c.clock.now, refresh: o.AllowRefresh, authorizeFn: o.Authorize, jobs: make(chan *verifyJob)}
	if err := a.resolveSources(c, &o); err != nil {
		return err
	}
	if err := a.resolveLimits(&o); err != nil {
		return err
	}
	if err := a.resolveReplies(&o); err != nil {
		return err
	}
	if err := a.resolveStaticKeys(&o); err != nil {
		return err
	}
	if len(a.keys) == 0 && o.JWKS == nil && len(o.ParseOptions) == 0 {
		return errors.New("wssafe: Auth needs a verification key: set HMACSecret (32+ random bytes), PublicKeys or JWKS")
	}
	a.resolveClaims(c, &o)
	if o.JWKS != nil { // last: it starts a background refresher
		ks, err := newKeySet(o.JWKS, c)
		if err != nil {
			return err
		}
		a.jwks = ks
		a.allowAsymmetric()
	}
	c.auth = a
	return nil
}

func (a *authenticator) resolveSources(c *config, o *AuthOptions) error {
	a.sources = o.Sources
	if a.sources == 0 {
		a.sources = FromHeader | FromSubprotocol
	}
	if a.sources&^(FromHeader|FromSubprotocol|FromCookie|FromFirstMessage) != 0 {
		return fmt.Errorf("wssafe: Auth.Sources has unknown bits %#x", uint8(a.sources))
	}
	if (a.sources&FromCookie != 0) != (o.CookieName != "") {
		return errors.New("wssafe: Auth.CookieName and the FromCookie source go together: set both or neither")
	}
	if o.CookieName != "" && c.InsecureSkipOriginCheck {
		return errors.New("wssafe: cookie authentication with InsecureSkipOriginCheck lets any web page open sockets as the user (cross-site WebSocket hijacking); list trusted sites in OriginPatterns instead")
	}
	if o.CookieName != "" {
		if err := c.checkCookieOrigins(); err != nil {
			return err
		}
	}
	a.cookie, a.query = o.CookieName, o.InsecureQueryParam
	if a.query != "" {
		logEvent(context.Background(), c.Logger, slog.LevelWarn, EventInsecureConfig,
			"wssafe: tokens accepted from the URL query; they may leak into access logs", slog.String("param", a.query))
	}
	if a.sources&FromSubprotocol == 0 {
		return nil
	}
	if len(c.Subprotocols) == 0 {
		c.Subprotocols = []string{DefaultSubprotocol}
	}
	for _, p := range c.Subprotocols {
		if _, ok := subprotocolToken(p); ok {
			return fmt.Errorf("wssafe: subprotocol %q looks like a token entry; the server must never select one", p)
		}
	}
	return nil
}

// resolveReplies checks the texts the protocol sends.
func (a *authenticator) resolveReplies(o *AuthOptions) error {
	for _, f := range [...]struct{ name, text string }{{"AuthenticatedText", o.AuthenticatedText}, {"ExpiredText", o.ExpiredText}} {
		if !utf8.ValidString(f.text) {
			return fmt.Errorf("wssafe: Auth.%s is not valid UTF-8; a client fails a text message that is not (close 1007)", f.name)
		}
	}
	if o.ExpiredText != "" && a.sources&FromFirstMessage == 0 {
		return errors.New("wssafe: Auth.ExpiredText is sent only to first-message clients; add FromFirstMessage to Sources, or leave ExpiredText empty")
	}
	a.welcome, a.expiredText = o.AuthenticatedText, o.ExpiredText
	return nil
}

func (a *authenticator) resolveLimits(o *AuthOptions) error {
	if o.AuthTimeout < 0 || o.AuthReadLimit < 0 || o.MaxTokenSize < 0 || o.AcceptableSkew < 0 || o.MaxTokenLifetime < 0 {
		return errors.New("wssafe: Auth durations and sizes must not be negative (zero means the default)")
	}
	if o.MaxTokenLifetime > 0 && o.InsecureAllowMissingExp {
		return errors.New("wssafe: Auth.MaxTokenLifetime bounds a token's exp, so tokens must carry one: drop InsecureAllowMissingExp, or leave MaxTokenLifetime zero")
	}
	a.timeout, a.readLimit, a.maxSize, a.skew = o.AuthTimeout, o.AuthReadLimit, o.MaxTokenSize, o.AcceptableSkew
	a.maxLifetime = o.MaxTokenLifetime
	setDefault(&a.timeout, DefaultAuthTimeout)
	if a.timeout > maxQuietAuthTimeout {
		logEvent(context.Background(), a.log, slog.LevelWarn, EventInsecureConfig,
			"wssafe: AuthTimeout over a minute; an unauthenticated client holds a connection (and a slot under the caps) that long",
			slog.Duration("auth_timeout", a.timeout))
	}
	setDefault(&a.readLimit, DefaultAuthReadLimit)
	setDefault(&a.maxSize, DefaultMaxTokenSize)
	a.typ = o.Type
	a.subjects = append([]string(nil), o.SubjectClaims...)
	if len(a.subjects) == 0 {
		a.subjects = []string{jwt.SubjectKey}
	}
	for _, s := range append(append([]string(nil), a.subjects...), o.RequiredClaims...) {
		if s == "" {
			return errors.New("wssafe: Auth.SubjectClaims and RequiredClaims must not contain empty names")
		}
	}
	return nil
}

func (a *authenticator) resolveStaticKeys(o *AuthOptions) error {
	if err := a.addHMAC(o); err != nil {
		return err
	}
	for i, pk := range o.PublicKeys {
		k, err := pk.bind()
		if err != nil {
			return fmt.Errorf("wssafe: Auth.PublicKeys[%d]: %w", i, err)
		}
		a.addKey(k)
	}
	return nil
}

func (a *authenticator) addKey(k boundKey) {
	a.keys = append(a.keys, k)
	if a.algs == nil {
		a.algs = make(map[string]bool)
	}
	a.algs[k.alg.String()] = true
}

// allowAsymmetric widens the header check for a JWK Set, whose keys (and so
// algorithms) change at run time; the key lookup then binds each key to its
// own "alg". HMAC is never allowed this way: a JWK Set is public.
func (a *authenticator) allowAsymmetric() {
	if a.algs == nil {
		a.algs = make(map[string]bool)
	}
	for _, alg := range jwa.SignatureAlgorithms() {
		if !alg.IsSymmetric() && alg != jwa.NoSignature() {
			a.algs[alg.String()] = true
		}
	}
}

func (a *authenticator) addHMAC(o *AuthOptions) error {
	alg := o.HMACAlgorithm
	if len(o.HMACSecret) == 0 {
		if alg != (jwa.SignatureAlgorithm{}) {
			return errors.New("wssafe: Auth.HMACAlgorithm is set but HMACSecret is empty")
		}
		return nil
	}
	if alg == (jwa.SignatureAlgorithm{}) {
		alg = jwa.HS256()
	}
	minLen, ok := hmacMinimum(alg)
	if !ok {
		return fmt.Errorf("wssafe: Auth.HMACAlgorithm %q: want HS256, HS384 or HS512", alg)
	}
	if len(o.HMACSecret) < minLen {
		if !o.InsecureAllowWeakSecret {
			return fmt.Errorf("wssafe: Auth.HMACSecret is %d bytes; %s needs at least %d random bytes (RFC 7518 section 3.2), e.g. from `openssl rand -base64 %d`; set InsecureAllowWeakSecret only to migrate from an existing weak secret",
				len(o.HMACSecret), alg, minLen, minLen)
		}
		logEvent(context.Background(), a.log, slog.LevelWarn, EventInsecureConfig,
			"wssafe: weak HMAC secret accepted; anyone who cracks it can mint tokens",
			slog.Int("len", len(o.HMACSecret)), slog.Int("minimum", minLen))
	} else if pattern := lowEntropy(o.HMACSecret); pattern != "" {
		if !o.InsecureAllowWeakSecret {
			return fmt.Errorf("wssafe: Auth.HMACSecret is not random (%s), so it can be guessed whatever its length; use %d random bytes, e.g. from `openssl rand -base64 %d`; set InsecureAllowWeakSecret only to migrate from an existing weak secret",
				pattern, minLen, minLen)
		}
		logEvent(context.Background(), a.log, slog.LevelWarn, EventInsecureConfig,
			"wssafe: low-entropy HMAC secret accepted; anyone who guesses it can mint tokens",
			slog.String("pattern", pattern))
	}
	a.addKey(boundKey{alg: alg, key: append([]byte(nil), o.HMACSecret...)})
	return nil
}

// lowEntropy names the pattern that makes secret trivially guessable, or
// returns "": few distinct bytes (all one byte, a couple of symbols), a
// repetition of a short block ("secretsecret..."), or bytes whose steps
// repeat ("0123...", "abcd...", "acegi...", a ramp 0x00, 0x01 ...). A
// random secret, raw or as hex or base64 text (`openssl rand -hex 16`,
// `-base64 24`), has none of them except with negligible probability:
// its 32 characters use 6 or more distinct symbols, repeat no block of 16
// or fewer and step irregularly.
func lowEntropy(secret []byte) string {
	var seen [256]bool
	distinct := 0
	for _, b := range secret {
		if !seen[b] {
			seen[b] = true
			distinct++
		}
	}
	if distinct < 6 {
		return fmt.Sprintf("%d distinct byte values", distinct)
	}
	if p := period(secret); p <= len(secret)/2 {
		return fmt.Sprintf("a block of %d bytes repeated", p)
	}
	steps := make([]byte, len(secret)-1)
	var count [256]int
	common := 0
	for i := range steps {
		steps[i] = secret[i+1] - secret[i]
		count[steps[i]]++
		common = max(common, count[steps[i]])
	}
	if p := period(steps); p <= len(steps)/4 || common >= len(steps)*3/4 {
		return "a run of bytes in regular steps"
	}
	return ""
}

// period returns the smallest p such that b[i] == b[i-p] for every i.
func period(b []byte) int {
	for p := 1; p < len(b); p++ {
		if bytes.Equal(b[p:], b[:len(b)-p]) {
			return p
		}
	}
	return len(b)
}

// resolveClaims builds the jwt.Parse options once. The caller's options
// come after wssafe's, and the ones that keep verification on come last,
// because jwx lets the last WithVerify/WithValidate/WithResetValidators win.
func (a *authenticator) resolveClaims(c *config, o *AuthOptions) {
	opts := []jwt.ParseOption{
		jwt.WithKeyProvider(a),
		jwt.WithClock(jwt.ClockFunc(c.clock.now)),
		jwt.WithAcceptableSkew(a.skew),
	}
	if o.InsecureAllowMissingExp {
		logEvent(context.Background(), c.Logger, slog.LevelWarn, EventInsecureConfig,
			"wssafe: tokens without exp accepted; a leaked token stays valid until the key is rotated")
	} else {
		opts = append(opts, jwt.WithRequiredClaim(jwt.ExpirationKey))
		a.required = append(a.required, jwt.ExpirationKey)
	}
	if o.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(o.Issuer))
		a.issuer = true
	}
	if o.Audience != "" {
		opts = append(opts, jwt.WithAudience(o.Audience))
		a.audience = true
	}
	for _, name := range o.RequiredClaims {
		opts = append(opts, jwt.WithRequiredClaim(name))
		a.required = append(a.required, name)
	}
	opts = append(opts, o.ParseOptions...)
	a.parseOptions = append(opts, jwt.WithVerify(true), jwt.WithValidate(true), jwt.WithResetValidators(false))
}

// bind resolves the key and checks that its algorithm fits it.
func (pk PublicKey) bind() (boundKey, error) {
	key := pk.Key
	if key == nil {
		var err error
		if key, err = parsePublicKeyPEM(pk.PEM); err != nil {
			return boundKey{}, err
		}
	}
	alg, err := bindAlgorithm(key, pk.Algorithm)
	if err != nil {
		return boundKey{}, err
	}
	return boundKey{alg: alg, key: key, kid: pk.KeyID}, nil
}

func parsePublicKeyPEM(b []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("neither Key nor a PEM block is given")
	}
	switch block.Type {
	case "PUBLIC KEY":
		return x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		return x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		return cert.PublicKey, nil
	}
	return nil, fmt.Errorf("PEM block %q is not a public key (a verifier needs only the public half)", block.Type)
}

// bindAlgorithm returns the algorithm key verifies: want, or the key's
// conventional one when want is zero. A mismatch (an HMAC algorithm for a
// public key, ES384 for a P-256 key) is an error.
func bindAlgorithm(key crypto.PublicKey, want jwa.SignatureAlgorithm) (jwa.SignatureAlgorithm, error) {
	var allowed []jwa.SignatureAlgorithm
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return want, fmt.Errorf("RSA key of %d bits; at least 2048 are required", k.N.BitLen())
		}
		allowed = []jwa.SignatureAlgorithm{jwa.RS256(), jwa.RS384(), jwa.RS512(), jwa.PS256(), jwa.PS384(), jwa.PS512()}
	case *ecdsa.PublicKey:
		alg, ok := map[string]jwa.SignatureAlgorithm{"P-256": jwa.ES256(), "P-384": jwa.ES384(), "P-521": jwa.ES512()}[k.Curve.Params().Name]
		if !ok {
			return want, fmt.Errorf("ECDSA curve %s is not supported", k.Curve.Params().Name)
		}
		allowed = []jwa.SignatureAlgorithm{alg}
	case ed25519.PublicKey:
		allowed = []jwa.SignatureAlgorithm{jwa.EdDSA(), jwa.EdDSAEd25519()}
	default:
		return want, fmt.Errorf("unsupported key type %T (want *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey)", key)
	}
	if want == (jwa.SignatureAlgorithm{}) {
		return allowed[0], nil
	}
	for _, alg := range allowed {
		if alg == want {
			return alg, nil
		}
	}
	return want, fmt.Errorf("algorithm %s does not fit a %T", want, key)
}

// FetchKeys implements jws.KeyProvider: it offers only keys bound to the
// header's algorithm, and only keys whose ID matches the header's kid.
func (a *authenticator) FetchKeys(ctx context.Context, sink jws.KeySink, sig *jws.Signature, _ *jws.Message) error {
	h := sig.ProtectedHeaders()
	alg, ok := h.Algorithm()
	if !ok {
		return errNoAlgorithm
	}
	kid, hasKid := h.KeyID()
	n := 0
	for _, k := range a.keys {
		if k.alg == alg && (k.kid == "" || !hasKid || k.kid == kid) {
			sink.Key(k.alg, k.key)
			n++
		}
	}
	if a.jwks != nil {
		key, err := a.jwks.lookup(ctx, alg, kid, hasKid)
		if err == nil {
			sink.Key(alg, key)
			return nil
		}
		if n == 0 {
			return err
		}
	}
	if n == 0 {
		return errUnknownKey
	}
	return nil
}

var (
	errNoAlgorithm = errors.New("wssafe: token header has no alg")
	errUnknownKey  = errors.New("wssafe: no key for the token's kid and alg")
)

// identity is what a verified token establishes.
type identity struct {
	subject string
	claims  jwt.Token
	exp     time.Time // zero without exp
}

// verify checks raw completely and returns the identity it proves. Errors
// are *authError values that match ErrInvalidToken or ErrTokenExpired.
func (a *authenticator) verify(ctx context.Context, raw []byte) (*identity, error) {
	if len(raw) > a.maxSize {
		return nil, invalidToken("too_large", nil)
	}
	hdr, payload, err := splitToken(raw)
	if err != nil {
		return nil, invalidToken("malformed", err)
	}
	if err := a.checkHeader(hdr); err != nil {
		return nil, err
	}
	opts := append(a.parseOptions[:len(a.parseOptions):len(a.parseOptions)], jwt.WithContext(ctx))
	tok, err := jwt.Parse(raw, opts...)
	if err != nil && !signatureHolds(err) {
		return nil, classify(err)
	}
	// The signature holds: jwx decodes and validates the claims only after
	// verifying, so from here on the reasons speak of what the issuer
	// signed, and a forger learns nothing from them.
	m, derr := decodeObject(payload)
	if derr != nil { // duplicate claims: jwx and wssafe might read different values
		if err != nil {
			return nil, classify(err)
		}
		return nil, invalidToken("malformed", derr)
	}
	if cerr := checkNumericDates(m); cerr != nil {
		return nil, cerr // before jwx's verdict: it read a string date as a date
	}
	if cerr := checkStringClaims(m); cerr != nil {
		return nil, cerr // jwx's verdict would be a decode error naming nothing
	}
	if err != nil {
		return nil, a.nameMissingClaim(classify(err), m)
	}
	sub, err := subjectFrom(m, a.subjects)
	if err != nil {
		return nil, err
	}
	if err := a.checkLifetime(tok, a.now()); err != nil {
		return nil, err
	}
	exp, _ := tok.Expiration()
	return &identity{subject: sub, claims: tok, exp: exp}, nil
}

// signatureHolds reports whether a jwt.Parse error came after the
// signature was verified: every failure of verification (a bad signature,
// no key for the kid, keys unavailable) is a jws verify error, and jwx
// decodes and validates the claims only once verification has passed.
// wssafe's own checks before jwt.Parse leave it no earlier failure.
func signatureHolds(err error) bool {
	return !errors.Is(err, jws.VerifyError()) && !errors.Is(err, errUnknownKey) && !errors.Is(err, errKeysUnavailable)
}

// nameMissingClaim turns jwx's missing-claim and issuer or audience errors
// into reason "missing_claim" naming the claim, when the claim is absent
// from the payload: jwx's errors carry no name but in their text.
func (a *authenticator) nameMissingClaim(err error, m map[string]json.RawMessage) error {
	var ae *authError
	if !errors.As(err, &ae) {
		return err
	}
	absent := func(name string) bool { _, ok := m[name]; return !ok }
	switch {
	case ae.reason == "missing_claim":
		for _, name := range a.required {
			if absent(name) {
				ae.claim = name
				break
			}
		}
	case ae.reason == "issuer" && a.issuer && absent(jwt.IssuerKey):
		ae.reason, ae.claim = "missing_claim", jwt.IssuerKey
	case ae.reason == "audience" && a.audience && absent(jwt.AudienceKey):
		ae.reason, ae.claim = "missing_claim", jwt.AudienceKey
	}
	return ae
}

// checkHeader applies the rules jwx leaves to the caller, before any key
// is touched.
func (a *authenticator) checkHeader(b []byte) error {
	h, err := decodeObject(b)
	if err != nil {
		return invalidToken("malformed", err)
	}
	var alg string
	if err := jsonString(h, "alg", &alg); err != nil || alg == "" {
		return invalidToken("malformed", errNoAlgorithm)
	}
	if strings.EqualFold(alg, "none") {
		return invalidToken("alg_none", nil)
	}
	if a.algs != nil && !a.algs[alg] {
		return invalidToken("alg_not_allowed", nil)
	}
	for _, name := range [...]string{"jwk", "jku", "x5u", "x5c"} {
		if _, ok := h[name]; ok {
			return invalidToken("key_in_header", nil)
		}
	}
	for _, name := range [...]string{"crit", "b64"} {
		if _, ok := h[name]; ok {
			return invalidToken("crit", nil)
		}
	}
	if a.typ != "" {
		var typ string
		if jsonString(h, "typ", &typ) != nil || !sameMediaType(typ, a.typ) {
			return invalidToken("typ", nil)
		}
	}
	return nil
}

// sameMediaType compares typ values per RFC 7515 section 4.1.9.
func sameMediaType(a, b string) bool {
	trim := func(s string) string {
		if len(s) > 12 && strings.EqualFold(s[:12], "application/") {
			return s[12:]
		}
		return s
	}
	return strings.EqualFold(trim(a), trim(b))
}

// authError is a refused token or identity. Its reason is a stable,
// secret-free word for logs; it matches its kind (ErrInvalidToken,
// ErrTokenExpired, ErrForbidden) and the cause with errors.Is.
type authError struct {
	reason string
	claim  string // the claim a missing_claim or invalid_claim names, from the configuration
	kind   error
	cause  error
}

// description is the RFC 6750 error_description for e: fixed text naming
// the claim for reasons that name one, else "". A claim name outside the
// characters RFC 6750 section 3 allows there gets the generic text.
// Nil-safe.
func (e *authError) description() string {
	if e == nil {
		return ""
	}
	var what string
	switch e.reason {
	case "missing_claim":
		what = "missing"
	case "invalid_claim":
		what = "invalid"
	default:
		return ""
	}
	if e.claim == "" || !descriptionSafe(e.claim) {
		return what + " required claim"
	}
	return what + " " + e.claim + " claim"
}

func descriptionSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

func (e *authError) Error() string { return e.kind.Error() + " (" + e.reason + ")" }

func (e *authError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

func invalidToken(reason string, cause error) error {
	return &authError{reason: reason, kind: ErrInvalidToken, cause: cause}
}

// claimError refuses a token for a missing or invalid claim, named.
func claimError(reason, claim string, cause error) error {
	return &authError{reason: reason, claim: claim, kind: ErrInvalidToken, cause: cause}
}

// classify maps jwx's errors to a reason. The checks are ordered from the
// most specific: a missing key is also a verification error.
func classify(err error) error {
	rules := [...]struct {
		target error
		reason string
	}{
		{jwt.TokenNotYetValidError(), "not_yet_valid"},
		{jwt.InvalidIssuedAtError(), "issued_in_future"},
		{jwt.InvalidIssuerError(), "issuer"},
		{jwt.InvalidAudienceError(), "audience"},
		{jwt.MissingRequiredClaimError(), "missing_claim"},
		{errUnknownKey, "unknown_key"},
		{errKeysUnavailable, "keys_unavailable"},
		{jws.VerifyError(), "signature"},
		{jwt.ValidateError(), "claims"},
	}
	if errors.Is(err, jwt.TokenExpiredError()) {
		return &authError{reason: "expired", kind: ErrTokenExpired, cause: err}
	}
	for _, r := range rules {
		if errors.Is(err, r.target) {
			return invalidToken(r.reason, err)
		}
	}
	return invalidToken("malformed", err)
}

// authorize runs the application's hook, failing closed on a panic.
func (a *authenticator) authorize(ctx context.Context, id *identity) (err error) {
	if a.authorizeFn == nil {
		return nil
	}
	defer func() {
		if v := recover(); v != nil {
			// Logged, counted and observed by the caller (logAuthFailure),
			// which knows the client address the line is limited by.
			err = &authError{reason: "panic", kind: ErrPanic, cause: errors.New(fmt.Sprint(v))}
		}
	}()
	if err := a.authorizeFn(ctx, id.subject, id.claims); err != nil {
		return &authError{reason: "forbidden", kind: ErrForbidden, cause: err}
	}
	return nil
}

// shutdown stops background work (the JWK Set refresher). Nil-safe.
func (a *authenticator) shutdown(ctx context.Context) {
	if a != nil && a.jwks != nil {
		a.jwks.shutdown(ctx)
	}
}
