// Package serve holds what every wssafe example shares: the common flags,
// the logger, and an http.Server with timeouts and graceful shutdown.
package serve

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/wssafe/wssafe"
)

// Flags are the flags every example accepts.
type Flags struct {
	Addr        string
	ReadLimit   int64
	Origins     string
	IdleTimeout time.Duration
	LogLevel    string
	LogFormat   string
}

// Register defines the common flags on fs with addr as the default address.
func (f *Flags) Register(fs *flag.FlagSet, addr string) {
	fs.StringVar(&f.Addr, "addr", addr, "listen address")
	fs.Int64Var(&f.ReadLimit, "read-limit", 0, "largest message in bytes (0 = 32 KiB)")
	fs.StringVar(&f.Origins, "origin", "", "comma-separated extra allowed origin patterns (default same-origin only)")
	fs.DurationVar(&f.IdleTimeout, "idle-timeout", 0, "close sessions idle this long (0 = off)")
	fs.StringVar(&f.LogLevel, "log-level", "info", "debug|info|warn|error")
	fs.StringVar(&f.LogFormat, "log-format", "text", "text|json")
}

// Logger returns the slog logger the flags ask for, writing to w.
func (f *Flags) Logger(w *os.File) (*slog.Logger, error) {
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
func (f *Flags) Options(log *slog.Logger) wssafe.Options {
	o := wssafe.Options{ReadLimit: f.ReadLimit, IdleTimeout: f.IdleTimeout, Logger: log}
	for _, p := range strings.Split(f.Origins, ",") {
		if p = strings.TrimSpace(p); p != "" {
			o.OriginPatterns = append(o.OriginPatterns, p)
		}
	}
	return o
}

// Run serves h on addr until SIGINT or SIGTERM, then shuts ep down (every
// session gets 1001) and the HTTP server after it.
func Run(log *slog.Logger, addr string, h http.Handler, ep *wssafe.Endpoint) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return serve(ctx, log, ln, h, ep)
}

func serve(ctx context.Context, log *slog.Logger, ln net.Listener, h http.Handler, ep *wssafe.Endpoint) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		MaxHeaderBytes:    16 << 10,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("listening", "url", "http://"+ln.Addr().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := ep.Shutdown(sctx)
	if err2 := srv.Shutdown(sctx); err == nil {
		err = err2
	}
	if err2 := <-errc; !errors.Is(err2, http.ErrServerClosed) && err == nil {
		err = err2
	}
	return err
}
