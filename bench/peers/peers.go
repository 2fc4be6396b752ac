// Package peers holds the echo servers compared in the benchmarks: wssafe
// with every guard on, and its peers written the way each library's own
// documentation recommends for a fast echo (read into a reused buffer,
// write the same bytes back, no per-message context or timer).
package peers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/coder/websocket"
	gorilla "github.com/gorilla/websocket"
	"github.com/lxzan/gws"

	"github.com/wssafe/wssafe"
	"github.com/wssafe/wssafe/bench/internal/benchjwt"
)

// ReadLimit is the read limit every peer is given (wssafe's default).
const ReadLimit = 32 << 10

// Handlers returns the HTTP echo handlers by name; "tcp" is not among them
// (see ServeTCP). "wssafe-hs256" is the wssafe echo behind first-message
// authentication (see WssafeAuth), with the benchmarks' HS256 secret;
// "wssafe-obs" is the wssafe echo with an Observer that does nothing (see
// WssafeObserved); "wssafe-prom", "wssafe-otel" and "wssafe-otelx" are the
// wssafe echo with a metrics adapter wired and read every second (see
// WssafeProm, WssafeOtel, WssafeOtelNoExemplars): their handlers are
// *Metered, whose Close stops the reads.
func Handlers() map[string]func() (http.Handler, error) {
	return map[string]func() (http.Handler, error){
		"wssafe":       Wssafe,
		"wssafe-hs256": func() (http.Handler, error) { return WssafeAuth(&wssafe.AuthOptions{HMACSecret: benchjwt.Secret}) },
		"wssafe-rb32k": func() (http.Handler, error) { return WssafeReadBuffer(32 << 10) },
		"wssafe-prom":  func() (http.Handler, error) { return WssafeProm() },
		"wssafe-otel":  func() (http.Handler, error) { return WssafeOtel() },
		"wssafe-obs":   WssafeObserved,
		"wssafe-otelx": func() (http.Handler, error) { return WssafeOtelNoExemplars() },
		// Compressed (see Deflate): the load tool offers permessage-deflate to these.
		"wssafe-deflate":     func() (http.Handler, error) { return newWssafe(Deflate("wssafe-deflate")) },
		"wssafe-deflate-all": func() (http.Handler, error) { return newWssafe(Deflate("wssafe-deflate-all")) },
		"wssafe-deflate-ctx": func() (http.Handler, error) { return newWssafe(Deflate("wssafe-deflate-ctx")) },
		"coder":              func() (http.Handler, error) { return Coder(), nil },
		"gorilla":            func() (http.Handler, error) { return Gorilla(), nil },
		"gws":                func() (http.Handler, error) { return GWS(), nil },
	}
}

// Names lists every implementation that echoes right after the handshake,
// the TCP ceiling included, sorted; the compressed ones (see Compressed),
// measured on their own, are not among them.
func Names() []string {
	names := []string{"tcp"}
	for n := range Handlers() {
		if !NeedsToken(n) && !Compressed(n) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// Compressed reports whether impl negotiates permessage-deflate (a
// client should offer it), and ServerContext whether it keeps its
// compression history across messages (a client should offer to let it).
func Compressed(impl string) bool    { return strings.Contains(impl, "-deflate") }
func ServerContext(impl string) bool { return strings.HasSuffix(impl, "-deflate-ctx") }

// Deflate returns the compression options of a compressed wssafe peer:
// "wssafe-deflate" is Options.Compression with its defaults (no context
// takeover, messages under 512 bytes sent as they are),
// "wssafe-deflate-all" compresses every message (CompressionThreshold 1),
// "wssafe-deflate-ctx" adds InsecureCompressionContextTakeover (and
// coder/websocket's threshold for it, 128 bytes).
func Deflate(impl string) func(*wssafe.Options) {
	return func(o *wssafe.Options) {
		o.Compression = true
		switch impl {
		case "wssafe-deflate-all":
			o.CompressionThreshold = 1
		case "wssafe-deflate-ctx":
			o.InsecureCompressionContextTakeover = true
			o.CompressionThreshold = 128
		}
	}
}

// NeedsToken reports whether impl expects an HS256 token (signed with
// benchjwt.Secret) as its first message and answers it with Ack.
func NeedsToken(impl string) bool { return strings.HasSuffix(impl, "-hs256") }

// Ack is what an authenticating peer answers a valid first-message token
// with, as the original Python server does.
const Ack = "Authenticated!"

// Wssafe is the wssafe echo with every guard on: the defaults (same-origin
// check, UTF-8 check, 32 KiB read limit, message timeout, ping rate limit,
// keepalive, write timeout, panic recovery, logging at Info to a JSON
// handler) plus the per-session message rate limit (Options.MessageRate),
// set high enough never to trigger but checked on every message.
func Wssafe() (http.Handler, error) { return newWssafe(nil) }

// WssafeIdle is [Wssafe] with an IdleTimeout (a minute, never reached),
// so that the benchmarks show what the idle deadline costs per message.
func WssafeIdle() (http.Handler, error) {
	return newWssafe(func(o *wssafe.Options) { o.IdleTimeout = time.Minute })
}

// WssafeReadBuffer is [Wssafe] with a read buffer of size bytes
// (Options.ReadBufferSize) instead of the default: "wssafe-rb32k" is 32 KiB.
func WssafeReadBuffer(size int) (http.Handler, error) {
	return newWssafe(func(o *wssafe.Options) { o.ReadBufferSize = size })
}

// newWssafe is the wssafe echo with every guard on, configured by more.
func newWssafe(more func(*wssafe.Options)) (http.Handler, error) {
	echo := wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		return s.Write(ctx, m.Type, m.Data)
	})
	o := &wssafe.Options{
		Logger:      slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo})),
		MessageRate: wssafe.Rate{PerSecond: 1e9, Burst: 1e9},
	}
	if more != nil {
		more(o)
	}
	return wssafe.New(echo, o)
}

// WssafeAuth is [Wssafe] behind a first-message protocol: the client's
// first message is its JWT, verified with auth (Sources is set to
// FromFirstMessage), and the session answers [Ack] (AuthenticatedText)
// before it echoes.
func WssafeAuth(auth *wssafe.AuthOptions) (http.Handler, error) {
	a := *auth
	a.Sources = wssafe.FromFirstMessage
	a.AuthenticatedText = Ack
	return newWssafe(func(o *wssafe.Options) { o.Auth = &a })
}

// Coder is the bare github.com/coder/websocket echo, the base wssafe builds
// on: Reader into a reused buffer, Write back, one background context.
func Coder() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(ReadLimit)
		ctx := context.Background()
		var buf []byte
		for {
			typ, rd, err := c.Reader(ctx)
			if err != nil {
				return
			}
			if buf, err = readAll(rd, buf[:0]); err != nil {
				return
			}
			if err := c.Write(ctx, typ, buf); err != nil {
				return
			}
		}
	})
}

// Gorilla is the github.com/gorilla/websocket echo: NextReader into a
// reused buffer, WriteMessage back.
func Gorilla() http.Handler {
	up := gorilla.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 4096}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetReadLimit(ReadLimit)
		var buf []byte
		for {
			typ, rd, err := c.NextReader()
			if err != nil {
				return
			}
			if buf, err = readAll(rd, buf[:0]); err != nil {
				return
			}
			if err := c.WriteMessage(typ, buf); err != nil {
				return
			}
		}
	})
}

type gwsEcho struct{ gws.BuiltinEventHandler }

func (gwsEcho) OnMessage(s *gws.Conn, m *gws.Message) {
	s.WriteMessage(m.Opcode, m.Bytes())
	m.Close()
}

// GWS is the github.com/lxzan/gws echo with its default options (pooled
// buffers, no UTF-8 check, no parallel processing).
func GWS() http.Handler {
	up := gws.NewUpgrader(gwsEcho{}, &gws.ServerOption{ReadMaxPayloadSize: ReadLimit})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := up.Upgrade(w, r)
		if err != nil {
			return
		}
		s.ReadLoop()
	})
}

// ServeTCP echoes raw bytes on every connection ln accepts: the ceiling no
// WebSocket server can beat (no framing, no masking, no handshake).
func ServeTCP(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go func() {
			defer c.Close()
			buf := make([]byte, 32<<10)
			for {
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				if _, err := c.Write(buf[:n]); err != nil {
					return
				}
			}
		}()
	}
}

// readAll is io.ReadAll into buf's storage.
func readAll(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, fmt.Errorf("read: %w", err)
		}
	}
}
