package wssafe_test

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"

	"github.com/coder/websocket"

	"github.com/wssafe/wssafe"
)

// Registration is a typed message. Its Validate method runs after strict
// decoding, before the callback.
type Registration struct {
	Email string `json:"email"`
	Name  string `json:"name"`
}

func (r Registration) Validate() error {
	return cmp.Or(
		wssafe.Email("email", r.Email),
		wssafe.Length("name", r.Name, 1, 64),
	)
}

// The callback receives a Registration that passed every check; anything
// else is answered with an error reply and the session goes on.
func ExampleJSON() {
	h := wssafe.JSON(func(ctx context.Context, s *wssafe.Session, r Registration) error {
		return s.WriteText(ctx, "welcome, "+r.Name)
	})
	ep, err := wssafe.New(h, &wssafe.Options{Logger: slog.New(slog.DiscardHandler)})
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
		`{"email":"ann@example.com","name":"Ann"}`,
		`{"email":"ann(at)example.com","name":"Ann"}`,
		`{"email":"ann@example.com","name":"Ann","admin":true}`,
		`{"email":"ann@example.com","name":"Ann"} trailing`,
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
	// welcome, Ann
	// {"type":"error","code":"invalid_message","field":"email","message":"must be an email address"}
	// {"type":"error","code":"unknown_field","message":"message has a member that is not allowed"}
	// {"type":"error","code":"invalid_json","message":"message has data after the JSON value"}
}
