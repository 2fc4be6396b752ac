// Command secure is a WebSocket server with first-message JWT
// authentication, hardened with wssafe, for the original Python client: a
// client sends its JWT (HS256 with the secret in WSSAFE_JWT_SECRET, or
// signed by a key from -jwks) as the first text message and gets
// "Authenticated!"; every text message M after that gets "Server received:
// M" until the token expires.
//
//	WSSAFE_JWT_SECRET=$(openssl rand -base64 32) go run ./examples/secure
//
// The subject is the token's user_id claim (a number or a string), falling
// back to sub. Failures follow wssafe's contract: an invalid token closes
// 3000 "invalid token", an expired one gets "Token Expired" and then 3000
// "token expired", silence for -auth-timeout closes 3008. Clients that can
// set headers may send "Authorization: Bearer <token>" instead, browsers the
// subprotocols ["wssafe", "bearer.<token>"]; both also get "Authenticated!".
//
// The original Python client as published (a 10-byte secret, tokens
// without exp) works only with -allow-weak-secret -allow-missing-exp, two
// migration flags that each log a warning.
//
// With -compression (off by default, as wssafe.Options.Compression) the
// server negotiates permessage-deflate, without context takeover, with
// clients that offer it; the protocol is the same, and no message shares a
// compression history with another, so the token's bytes never influence
// the compressed size of a later message.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/wssafe/wssafe"
	"github.com/wssafe/wssafe/examples/internal/serve"
)

// secretEnv names the environment variable holding the HMAC secret: a flag
// value would be visible to every user of the machine in ps.
const secretEnv = "WSSAFE_JWT_SECRET"

type config struct {
	serve.Flags
	authTimeout     time.Duration
	allowWeakSecret bool
	allowMissingExp bool
	jwks            string
	issuer          string
	audience        string
	secret          []byte
}

func main() { serve.Main("secure", run) }

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	log, err := cfg.Logger(stderr)
	if err != nil {
		return err
	}
	h, ep, err := newHandler(cfg, log)
	if err != nil {
		return err
	}
	return serve.Run(ctx, log, &cfg.Flags, h, ep)
}

func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("secure", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.Register(fs, serve.Flags{Addr: "127.0.0.1:8888"})
	fs.DurationVar(&cfg.authTimeout, "auth-timeout", wssafe.DefaultAuthTimeout, "time allowed for the first-message token")
	fs.BoolVar(&cfg.allowWeakSecret, "allow-weak-secret", false, "accept a "+secretEnv+" shorter than 32 bytes (migration only; logs a warning)")
	fs.BoolVar(&cfg.allowMissingExp, "allow-missing-exp", false, "accept tokens without exp (migration only; logs a warning)")
	fs.StringVar(&cfg.jwks, "jwks", "", "JWK Set `FILE|URL` (https://) with the public keys that sign tokens")
	fs.StringVar(&cfg.issuer, "issuer", "", "required iss claim")
	fs.StringVar(&cfg.audience, "audience", "", "required aud claim")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if s := getenv(secretEnv); s != "" {
		cfg.secret = []byte(s)
	}
	if len(cfg.secret) == 0 && cfg.jwks == "" {
		return cfg, errors.New("no verification key: set " + secretEnv + " (at least 32 random bytes) or pass -jwks FILE|URL")
	}
	if n := len(cfg.secret); n > 0 && n < 32 && !cfg.allowWeakSecret {
		return cfg, fmt.Errorf("%s is %d bytes; HS256 needs at least 32 random bytes (openssl rand -base64 32); pass -allow-weak-secret only to migrate from an existing weak secret", secretEnv, n)
	}
	return cfg, nil
}

// newHandler builds the endpoint: the first-message protocol on every path.
func newHandler(cfg config, log *slog.Logger) (http.Handler, *wssafe.Endpoint, error) {
	auth := &wssafe.AuthOptions{
		HMACSecret:              cfg.secret,
		InsecureAllowWeakSecret: cfg.allowWeakSecret,
		InsecureAllowMissingExp: cfg.allowMissingExp,
		Sources:                 wssafe.FromFirstMessage | wssafe.FromHeader | wssafe.FromSubprotocol,
		AuthTimeout:             cfg.authTimeout,
		SubjectClaims:           []string{"user_id", "sub"},
		Issuer:                  cfg.issuer,
		Audience:                cfg.audience,
		// The replies the original Python client reads.
		AuthenticatedText: "Authenticated!",
		ExpiredText:       "Token Expired",
	}
	if cfg.jwks != "" {
		auth.JWKS = &wssafe.JWKSOptions{File: cfg.jwks}
		if strings.Contains(cfg.jwks, "://") {
			auth.JWKS = &wssafe.JWKSOptions{URL: cfg.jwks}
		}
	}
	o, err := cfg.Options(log)
	if err != nil {
		return nil, nil, err
	}
	o.Auth = auth
	o.Accept = []wssafe.MessageType{wssafe.MessageText}
	ep, err := wssafe.New(wssafe.HandlerFunc(echo), &o)
	if err != nil {
		return nil, nil, err
	}
	return ep, ep, nil
}

func echo(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
	return s.WriteText(ctx, "Server received: "+m.Text())
}
