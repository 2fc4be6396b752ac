package wssafe_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/coder/websocket"

	"github.com/wssafe/wssafe"
)

// An echo server: one callback, mounted on an existing ServeMux.
func ExampleNew() {
	ep, err := wssafe.New(wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		return s.WriteText(ctx, "Server received: "+m.Text())
	}), &wssafe.Options{Accept: []wssafe.MessageType{wssafe.MessageText}})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", ep)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer ep.Shutdown(context.Background())

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.CloseNow()
	c.Write(ctx, websocket.MessageText, []byte("hello"))
	_, reply, _ := c.Read(ctx)
	fmt.Println(string(reply))

	c.Write(ctx, websocket.MessageBinary, []byte{0xff}) // not accepted here
	_, _, err = c.Read(ctx)
	fmt.Println(websocket.CloseStatus(err))
	// Output:
	// Server received: hello
	// StatusUnsupportedData
}

// Middleware composes per-message concerns around the callback, the way
// http middleware does.
func ExampleChain() {
	logSize := func(next wssafe.Handler) wssafe.Handler {
		return wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
			fmt.Println("message of", len(m.Data), "bytes")
			return next.ServeMessage(ctx, s, m)
		})
	}
	h := wssafe.Chain(wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		fmt.Println("handled", m.Text())
		return nil
	}), logSize)
	h.ServeMessage(context.Background(), nil, wssafe.Message{Type: wssafe.MessageText, Data: []byte("hi")})
	// Output:
	// message of 2 bytes
	// handled hi
}

// A graceful stop on SIGINT or SIGTERM: the server's Shutdown begins the
// sessions' 1001 closes, the endpoint's waits for them, under one deadline.
func ExampleEndpoint_ShutdownWith() {
	var ep *wssafe.Endpoint // from wssafe.New
	srv := &http.Server{Addr: "127.0.0.1:8765", Handler: ep, ReadHeaderTimeout: 5 * time.Second}
	ep.ShutdownWith(srv)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
			log.Fatal(err)
		}
	}()
	<-ctx.Done()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	ep.Shutdown(ctx)
}
