package wssafe_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"

	"github.com/coder/websocket"

	"github.com/wssafe/wssafe"
)

// Join and Say are the members of two message types beside "type".
type Join struct {
	Room string `json:"room"`
}

func (j Join) Validate() error { return wssafe.Length("room", j.Room, 1, 32) }

type Say struct {
	Room string `json:"room"`
	Text string `json:"text"`
}

// A Router dispatches {"type": ...} envelopes to typed handlers.
func ExampleRouter() {
	r := wssafe.NewRouter()
	wssafe.Route(r, "join", func(ctx context.Context, s *wssafe.Session, j Join) error {
		return s.WriteText(ctx, "joined "+j.Room)
	})
	wssafe.Route(r, "say", func(ctx context.Context, s *wssafe.Session, m Say) error {
		return s.WriteText(ctx, m.Room+": "+m.Text)
	})
	ep, err := wssafe.New(r, &wssafe.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(ep)
	defer srv.Close()

	ctx := context.Background()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		panic(err)
	}
	for _, msg := range []string{
		`{"type":"join","room":"gophers"}`,
		`{"type":"say","room":"gophers","text":"hello"}`,
		`{"type":"shutdown"}`,
		`{"type":"join","room":""}`,
		`{"type":"join","TYPE":"say","room":"gophers"}`,
	} {
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			panic(err)
		}
		_, reply, err := c.Read(ctx)
		if err != nil {
			panic(err)
		}
		fmt.Println(string(reply))
	}
	c.Close(websocket.StatusNormalClosure, "")
	ep.Shutdown(ctx)
	// Output:
	// joined gophers
	// gophers: hello
	// {"type":"error","code":"unknown_type","field":"type","message":"is not a known message type"}
	// {"type":"error","code":"invalid_message","field":"room","message":"must be 1 to 32 characters long"}
	// {"type":"error","code":"invalid_json","message":"message has a duplicate key"}
}
