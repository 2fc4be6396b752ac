// Command echo is an echo server for the original Python echo client,
// hardened by wssafe.
//
// Every text message M gets the text reply "Server received: M". Binary
// messages close the session with 1003; everything else follows wssafe's
// defaults (32 KiB messages, UTF-8 checked, same-origin browsers only,
// keepalive, panic recovery). With -compression (off by default, as
// wssafe.Options.Compression) it negotiates permessage-deflate, without
// context takeover, with clients that offer it; the protocol is the same.
//
//	go run ./examples/echo -addr 127.0.0.1:8765
package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"net/http"

	"github.com/wssafe/wssafe"
	"github.com/wssafe/wssafe/examples/internal/serve"
)

func main() { serve.Main("echo", run) }

// config is every flag of the example, in one place.
type config struct {
	serve.Flags
}

func parse(args []string, stderr io.Writer) (*config, error) {
	var c config
	fs := flag.NewFlagSet("echo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.Register(fs, serve.Flags{Addr: "127.0.0.1:8765"})
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return &c, nil
}

func run(ctx context.Context, args []string, _ func(string) string, stderr io.Writer) error {
	c, err := parse(args, stderr)
	if err != nil {
		return err
	}
	log, err := c.Logger(stderr)
	if err != nil {
		return err
	}
	ep, err := newEndpoint(c, log)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/", ep) // WebSocket on every path, as the original Python server
	return serve.Run(ctx, log, &c.Flags, mux, ep)
}

// echo answers each text message with "Server received: " and the message.
func echo(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
	return s.WriteText(ctx, "Server received: "+m.Text())
}

func newEndpoint(c *config, log *slog.Logger) (*wssafe.Endpoint, error) {
	o, err := c.Options(log)
	if err != nil {
		return nil, err
	}
	o.Accept = []wssafe.MessageType{wssafe.MessageText}
	return wssafe.New(wssafe.HandlerFunc(echo), &o)
}
