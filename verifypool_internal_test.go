package wssafe

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const poolTestSecret = "test-only-verifier-pool-secret-0123456789"

func poolAuthenticator(t *testing.T, opts ...jwt.ParseOption) *authenticator {
	t.Helper()
	c, err := (&Options{Auth: &AuthOptions{HMACSecret: []byte(poolTestSecret), ParseOptions: opts}}).resolve(hooks{})
	require.NoError(t, err)
	return c.auth
}

func poolToken(t *testing.T, subject string) []byte {
	t.Helper()
	tok, err := jwt.NewBuilder().Subject(subject).Expiration(time.Now().Add(time.Minute)).Build()
	require.NoError(t, err)
	b, err := jwt.Sign(tok, jwt.WithKey(jwa.HS256(), []byte(poolTestSecret)))
	require.NoError(t, err)
	return b
}

// Concurrent verifications each get their own token's identity, whether an
// idle verifier takes them or a new one starts.
func TestVerifyAsideConcurrent(t *testing.T) {
	t.Parallel()
	a := poolAuthenticator(t)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			for j := range 20 {
				sub := fmt.Sprintf("user-%d-%d", i, j)
				id, err := a.verifyAside(context.Background(), poolToken(t, sub))
				if assert.NoError(t, err) {
					assert.Equal(t, sub, id.subject)
				}
			}
		})
	}
	wg.Wait()
	_, err := a.verifyAside(context.Background(), []byte("not.a.token"))
	assert.ErrorIs(t, err, ErrInvalidToken)
}

// A panic while verifying (here in a caller's validator) reaches the
// caller's goroutine, as if verify had run there, and the verifier that
// recovered it goes on serving.
func TestVerifyAsidePanicsOnCaller(t *testing.T) {
	t.Parallel()
	a := poolAuthenticator(t, jwt.WithValidator(jwt.ValidatorFunc(func(_ context.Context, tok jwt.Token) error {
		if sub, _ := tok.Subject(); sub == "bug" {
			panic("validator bug")
		}
		return nil
	})))
	assert.PanicsWithValue(t, "validator bug", func() {
		a.verifyAside(context.Background(), poolToken(t, "bug"))
	})
	id, err := a.verifyAside(context.Background(), poolToken(t, "fine"))
	require.NoError(t, err)
	assert.Equal(t, "fine", id.subject)
}
