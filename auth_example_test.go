package wssafe_test

import (
	"context"
	"errors"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/wssafe/wssafe"
)

// Tokens from an identity provider's JWK Set, checked for issuer and
// audience, with a role rule and in-band refresh. Browsers send the token
// as a subprotocol entry, other clients in the Authorization header.
func ExampleAuthOptions() {
	h := wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		return s.WriteText(ctx, "hello "+s.Subject())
	})
	ep, err := wssafe.New(h, &wssafe.Options{
		Auth: &wssafe.AuthOptions{
			JWKS:         &wssafe.JWKSOptions{URL: "https://idp.example.com/.well-known/jwks.json"},
			Issuer:       "https://idp.example.com/",
			Audience:     "chat",
			AllowRefresh: true,
			Authorize: func(ctx context.Context, subject string, claims jwt.Token) error {
				var role string
				if claims.Get("role", &role) != nil || role != "member" {
					return errors.New("not a member")
				}
				return nil
			},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	http.Handle("/ws", ep)
}

// A first-message protocol: an HS256 token as the first text message, the
// subject in user_id, "Authenticated!" back once it is verified, or "Token
// Expired" before the close 3000 when it has expired.
func ExampleAuthOptions_firstMessage() {
	ep, err := wssafe.New(wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		return s.WriteText(ctx, "Server received: "+m.Text())
	}), &wssafe.Options{
		Auth: &wssafe.AuthOptions{
			HMACSecret:        []byte(os.Getenv("WSSAFE_JWT_SECRET")), // 32+ random bytes
			Sources:           wssafe.FromFirstMessage,
			SubjectClaims:     []string{"user_id", "sub"},
			AuthenticatedText: "Authenticated!",
			ExpiredText:       "Token Expired",
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	http.Handle("/", ep)
}

// Log a user out everywhere: close every session bound to the subject, on
// every node when the endpoint has a Backplane, and, since
// MaxTokenLifetime bounds every token's life, refuse the subject's tokens
// issued before now on every node for that long.
func ExampleHub_CloseSubject() {
	ep, err := wssafe.New(wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		return s.WriteText(ctx, "hello "+s.Subject())
	}), &wssafe.Options{
		Auth: &wssafe.AuthOptions{
			HMACSecret:       []byte(os.Getenv("WSSAFE_JWT_SECRET")), // 32+ random bytes
			MaxTokenLifetime: 15 * time.Minute,                       // what the issuer mints at most
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	logout := func(subject string) {
		if err := ep.Hub().CloseSubject(subject, nil); err != nil { // nil: close 3003 "forbidden"
			log.Printf("revoking on the other nodes: %v", err) // this node has closed and revoked
		}
	}
	_ = logout
}
