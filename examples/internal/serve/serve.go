// Package serve holds what every wssafe example shares: the common flags,
// the logger, and an http.Server with timeouts and graceful shutdown.
package serve

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/wssafe/wssafe"
	wsprom "github.com/wssafe/wssafe/prometheus"
)

// Flags are the flags every example accepts: one place for all of them.
type Flags struct {
	Addr        string
	ReadLimit   int64
	Origins     string
	IdleTimeout time.Duration
	LogLevel    string
	LogFormat   string

	MsgRate        float64
	MsgBurst       int
	MaxConns       int
	MaxConnsPerIP  int
	AllowIPs       string
	DenyIPs        string
	TrustedProxies string
	AllowedHosts   string
	StatsAddr      string
	Compression    bool

	// metrics, with StatsAddr, is the endpoint's Prometheus view, given
	// to it as its Observer by Options and served by Run on StatsAddr.
	metrics *wsprom.Metrics
}

// Register defines the common flags on fs. The values in def are their
// defaults; empty log settings default to info and text.
func (f *Flags) Register(fs *flag.FlagSet, def Flags) {
	if def.LogLevel == "" {
		def.LogLevel = "info"
	}
	if def.LogFormat == "" {
		def.LogFormat = "text"
	}
	fs.StringVar(&f.Addr, "addr", def.Addr, "listen address")
	fs.Int64Var(&f.ReadLimit, "read-limit", def.ReadLimit, "largest message in bytes (0 = 32 KiB)")
	fs.StringVar(&f.Origins, "origin", def.Origins, "comma-separated extra allowed origin patterns (default same-origin only)")
	fs.DurationVar(&f.IdleTimeout, "idle-timeout", def.IdleTimeout, "close sessions idle this long (0 = off)")
	fs.StringVar(&f.LogLevel, "log-level", def.LogLevel, "debug|info|warn|error")
	fs.StringVar(&f.LogFormat, "log-format", def.LogFormat, "text|json")

	fs.Float64Var(&f.MsgRate, "msg-rate", def.MsgRate, "messages per second per session (0 = off); over it: close 1008")
	fs.IntVar(&f.MsgBurst, "msg-burst", def.MsgBurst, "message burst per session (0 = the rate rounded up)")
	fs.IntVar(&f.MaxConns, "max-conns", def.MaxConns, "most sessions in all (0 = no cap); over it: HTTP 503")
	fs.IntVar(&f.MaxConnsPerIP, "max-conns-per-ip", def.MaxConnsPerIP, "most sessions per client address (0 = no cap); over it: HTTP 429")
	fs.StringVar(&f.AllowIPs, "allow-ip", def.AllowIPs, "comma-separated CIDRs allowed to connect (default all)")
	fs.StringVar(&f.DenyIPs, "deny-ip", def.DenyIPs, "comma-separated CIDRs refused with HTTP 403")
	fs.StringVar(&f.TrustedProxies, "trusted-proxy", def.TrustedProxies, "comma-separated CIDRs of proxies whose X-Forwarded-For is believed")
	fs.StringVar(&f.AllowedHosts, "allowed-host", def.AllowedHosts, "comma-separated Host values a handshake may carry, e.g. localhost:8080 (default any); others get HTTP 421 (DNS rebinding)")
	fs.StringVar(&f.StatsAddr, "stats-addr", def.StatsAddr, "serve the Stats as JSON (GET /stats) and Prometheus metrics (GET /metrics) on this address (keep it on localhost); SIGUSR1 logs the Stats too")
	fs.BoolVar(&f.Compression, "compression", def.Compression, "negotiate permessage-deflate with clients that offer it, without context takeover (wssafe.Options.Compression)")
}

// Logger returns the slog logger the flags ask for, writing to w.
func (f *Flags) Logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.LogLevel)); err != nil {
		return nil, fmt.Errorf("-log-level: %w", err)
	}
	o := &slog.HandlerOptions{Level: level}
	switch f.LogFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, o)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, o)), nil
	}
	return nil, fmt.Errorf("-log-format: %q is not text or json", f.LogFormat)
}

// Options returns the wssafe options the common flags set.
func (f *Flags) Options(log *slog.Logger) (wssafe.Options, error) {
	o := wssafe.Options{
		ReadLimit:      f.ReadLimit,
		IdleTimeout:    f.IdleTimeout,
		Logger:         log,
		OriginPatterns: list(f.Origins),
		MaxConns:       f.MaxConns,
		MaxConnsPerIP:  f.MaxConnsPerIP,
		AllowIPs:       list(f.AllowIPs),
		DenyIPs:        list(f.DenyIPs),
		TrustedProxies: list(f.TrustedProxies),
		AllowedHosts:   list(f.AllowedHosts),
		Compression:    f.Compression,
	}
	if f.StatsAddr != "" {
		f.metrics = wsprom.New(wsprom.Options{})
		o.Observer = f.metrics.Observe // an application's own goes beside it: wssafe.Observers(f.metrics.Observe, mine)
	}
	switch {
	case f.MsgRate > 0:
		o.MessageRate = wssafe.Rate{PerSecond: f.MsgRate, Burst: f.MsgBurst}
	case f.MsgBurst != 0:
		return o, fmt.Errorf("-msg-burst needs -msg-rate")
	}
	return o, nil
}

// list splits a comma-separated flag value, dropping empty entries.
func list(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// RunFunc is an example's whole program, with its environment passed in so
// that tests can drive it.
type RunFunc func(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error

// Main runs run until SIGINT or SIGTERM and exits non-zero, with one line
// on stderr, if it fails.
func Main(name string, run RunFunc) {
	ctx, stop := SignalContext()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		}
		os.Exit(1)
	}
}

// SignalContext returns a context cancelled by SIGINT or SIGTERM.
func SignalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// Run serves h on f.Addr until ctx ends (see SignalContext), then shuts the
// HTTP server down and ep with it (every session gets 1001). With
// f.StatsAddr it also serves there, and only there, ep's Stats as JSON and
// its Prometheus metrics at /metrics (see MonitorHandler); SIGUSR1 logs the
// Stats.
func Run(ctx context.Context, log *slog.Logger, f *Flags, h http.Handler, ep *wssafe.Endpoint) error {
	ln, err := net.Listen("tcp", f.Addr)
	if err != nil {
		return err
	}
	defer logStatsOnSignal(log, ep)()
	if f.StatsAddr != "" {
		sln, err := net.Listen("tcp", f.StatsAddr)
		if err != nil {
			ln.Close()
			return err
		}
		go Serve(ctx, log, sln, MonitorHandler(ep, f.metrics), nil)
	}
	return Serve(ctx, log, ln, h, ep)
}

// MonitorHandler serves m's metrics (m attached to ep) in Prometheus'
// text format at /metrics, and ep's Stats as JSON on every other path. A
// nil m serves the Stats alone. It is for the stats listener, never the
// public one: the metrics show what the endpoint refuses and why.
func MonitorHandler(ep *wssafe.Endpoint, m *wsprom.Metrics) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", StatsHandler(ep))
	if m != nil {
		m.Attach(ep)
		reg := prometheus.NewRegistry()
		reg.MustRegister(m, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	}
	return mux
}

// StatsHandler serves ep.Stats() as JSON.
func StatsHandler(ep *wssafe.Endpoint) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(ep.Stats())
	})
}

// ShutdownTimeout is how long Serve's graceful shutdown may take in all.
const ShutdownTimeout = 10 * time.Second

// Serve serves h on ln with the timeouts and size bounds every server
// needs (ServerLimits) until ctx ends, then shuts ep (if not nil) and the
// server down gracefully, within ShutdownTimeout: see serveWithin.
func Serve(ctx context.Context, log *slog.Logger, ln net.Listener, h http.Handler, ep *wssafe.Endpoint) error {
	return serveWithin(ctx, log, ln, h, ep, ShutdownTimeout)
}

// serveWithin is Serve with the shutdown's time budget as a parameter. Both
// shutdowns share one deadline: the HTTP server's first, which stops
// accepting, begins every session's 1001 close (ep is registered with
// ShutdownWith) and waits for the plain requests, dropping those still
// running at the deadline (a request body in flight); then ep.Shutdown,
// which waits for the sessions and drops those whose peers do not answer
// in time. A connection dropped at the deadline is what the deadline is
// for, not a failure: it is logged, and serveWithin returns nil.
func serveWithin(ctx context.Context, log *slog.Logger, ln net.Listener, h http.Handler, ep *wssafe.Endpoint, grace time.Duration) error {
	lim := ServerLimits
	srv := &http.Server{
		Handler:           http.MaxBytesHandler(h, lim.MaxBodyBytes),
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		ReadTimeout:       lim.ReadTimeout,
		WriteTimeout:      lim.WriteTimeout,
		MaxHeaderBytes:    lim.MaxHeaderBytes,
		IdleTimeout:       lim.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if ep != nil {
		ep.ShutdownWith(srv)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("listening", "url", "http://"+ln.Addr().String())
	select {
	case err := <-errc:
		if ep != nil {
			ep.Shutdown(context.Background())
		}
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	// A twentieth of the budget is kept back for dropping what is left and
	// for the process to exit, so that a supervisor that kills at exactly
	// the budget (docker stop's default is 10 s) never has to.
	sctx, cancel := context.WithTimeout(context.Background(), grace-grace/20)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		log.Warn("shutdown deadline reached; dropped the requests still running", "error", err)
	}
	if ep != nil {
		if err := ep.Shutdown(sctx); err != nil {
			log.Warn("shutdown deadline reached with sessions still running; their connections were closed", "error", err)
		}
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
