// Command chat is wssafe's showcase: a small multi-user chat served with its
// page, using every part of the library the way a real application would.
//
//	go run ./examples/chat        # then open http://127.0.0.1:8080
//
// Sign-in validates a display name and an email (wssafe.Email) and issues a
// short-lived HS256 JWT (secret from WSSAFE_JWT_SECRET, or random per run)
// for a fresh random subject: the demo cannot prove an email, so the email
// is never the identity, and two sign-ins with one address are two users.
// Others tell users apart by the tag derived from the subject, shown after
// every name; names are free and need not be unique.
// The page keeps the token in memory and offers it as a WebSocket
// subprotocol; wssafe verifies it at the handshake, binds the session to its
// subject, and closes the session 3000 when the token expires unless the
// page refreshes it in-band first. Messages are typed JSON through
// wssafe.Router ("say", "typing", "rename"); the Hub broadcasts them through
// bounded send queues; rate limits, connection caps and the origin check are
// on; /stats serves a summary of the endpoint's counters to signed-in users
// (the full Stats stay on -stats-addr). Sign-in and token refresh are
// rate-limited per client address, refresh also per subject.
//
// With -compression (off by default, as wssafe.Options.Compression) the
// socket negotiates permessage-deflate without context takeover with
// browsers, which all offer it: the JSON messages compress several times
// (those of 512 bytes and more are sent compressed), and the protocol is
// unchanged.
//
// With -redis, several chat processes are one chat (see cluster.go): what
// is said on one node reaches every node, the online list is the whole
// cluster's, and a user's sixth socket is refused on whichever node it
// tries. The cluster key comes from WSSAFE_CLUSTER_KEY and the token
// secret, then required, from WSSAFE_JWT_SECRET, the same on every node.
//
//	WSSAFE_CLUSTER_KEY=... WSSAFE_JWT_SECRET=... go run ./examples/chat -redis redis://127.0.0.1:6379/0 -node n1
package main

import (
	"context"
	"crypto/rand"
	"embed"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/wssafe/wssafe"
	"github.com/wssafe/wssafe/examples/internal/serve"
	"github.com/wssafe/wssafe/redis"
)

//go:embed static
var static embed.FS

// secretEnv names the environment variable that holds the signing secret;
// a flag value would be visible in ps.
const secretEnv = "WSSAFE_JWT_SECRET"

// config is every flag of the example.
type config struct {
	serve.Flags
	tokenTTL time.Duration
	secret   []byte

	// redisURL, node and clusterKeys join a cluster; an empty redisURL
	// is a single node.
	redisURL    string
	node        string
	clusterKeys []redis.Key
}

func main() { serve.Main("chat", run) }

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := parse(args, getenv, stderr)
	if err != nil {
		return err
	}
	log, err := cfg.Logger(stderr)
	if err != nil {
		return err
	}
	app, err := newApp(cfg, log)
	if err != nil {
		return err
	}
	defer app.announce(ctx)()
	return serve.Run(ctx, log, &cfg.Flags, app.routes(), app.ep)
}

func parse(args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	cfg := &config{}
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.Register(fs, serve.Flags{
		Addr:          "127.0.0.1:8080",
		LogFormat:     "json",
		MsgRate:       5,
		MsgBurst:      10,
		MaxConns:      500,
		MaxConnsPerIP: 50,
	})
	fs.DurationVar(&cfg.tokenTTL, "token-ttl", 15*time.Minute, "lifetime of the tokens sign-in issues")
	fs.StringVar(&cfg.redisURL, "redis", "", "join a cluster through this Redis, e.g. redis://127.0.0.1:6379/0 (or $"+redisEnv+"); needs $"+clusterKeyEnv+" and $"+secretEnv)
	fs.StringVar(&cfg.node, "node", "", "this node's name, unique in the cluster (default a random ID)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if cfg.tokenTTL < 10*time.Second {
		return nil, fmt.Errorf("-token-ttl %v: at least 10s, so that the page can refresh in time", cfg.tokenTTL)
	}
	if err := cfg.parseCluster(getenv); err != nil {
		return nil, err
	}
	cfg.secret = []byte(getenv(secretEnv))
	if len(cfg.secret) == 0 {
		cfg.secret = make([]byte, 32)
		rand.Read(cfg.secret) // tokens then last only as long as this process
	}
	return cfg, nil
}

// app is the chat: the wssafe endpoint and the HTTP API around it.
type app struct {
	cfg    *config
	log    *slog.Logger
	ep     *wssafe.Endpoint
	tokens *issuer

	// signIns limits /api/login per client address; refreshByAddr and
	// refreshBySubject limit /api/refresh per address and per subject.
	signIns, refreshByAddr, refreshBySubject *keyedLimiter
}

func newApp(cfg *config, log *slog.Logger) (*app, error) {
	a := &app{cfg: cfg, log: log}
	tokens, err := newIssuer(cfg.secret, cfg.tokenTTL)
	if err != nil {
		return nil, err
	}
	a.tokens = tokens
	o, err := cfg.Options(log)
	if err != nil {
		return nil, err
	}
	a.signIns = newKeyedLimiter(time.Second, 20, defaultMaxKeys, time.Now)
	a.refreshByAddr = newKeyedLimiter(time.Second, 10, defaultMaxKeys, time.Now)
	// A page refreshes once per 0.8 lifetimes; four per lifetime is ample.
	a.refreshBySubject = newKeyedLimiter(cfg.tokenTTL/4, 3, defaultMaxKeys, time.Now)
	o.Subprotocols = []string{"chat.v1"}
	o.Accept = []wssafe.MessageType{wssafe.MessageText}
	o.MaxConnsPerSubject = 5
	o.Auth = &wssafe.AuthOptions{
		HMACSecret:   cfg.secret,
		Sources:      wssafe.FromSubprotocol,
		Issuer:       issuerName,
		Audience:     issuerName,
		AllowRefresh: true,
	}
	o.OnOpen = a.joined
	o.OnClose = a.left
	if o.Backplane, err = a.backplane(); err != nil {
		return nil, err
	}
	a.ep, err = wssafe.New(a.router(), &o)
	return a, err
}

// routes is the HTTP side: the page, sign-in, token refresh, stats, and
// the socket.
func (a *app) routes() http.Handler {
	page, _ := fs.Sub(static, "static")
	mux := http.NewServeMux()
	mux.Handle("GET /", securityHeaders(http.FileServerFS(page)))
	mux.HandleFunc("POST /api/login", a.login)
	mux.HandleFunc("POST /api/refresh", a.refresh)
	mux.HandleFunc("GET /stats", a.stats)
	mux.Handle("GET /ws", a.ep)
	return mux
}

// securityHeaders keeps the page from running anything but its own files.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		skipBody(w, r) // the page reads no body
		w.Header().Set("Content-Security-Policy", "default-src 'self'; connect-src 'self'; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}
