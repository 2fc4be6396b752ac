package wssafe_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe"
)

// An in-band refresh is recognised by its exact member names only:
// encoding/json would take {"TYPE":"refresh","Token":...} for one. A
// message whose one type-like member is spelled otherwise reaches the
// Handler; one that spells "type" exactly beside another type-like member,
// or a token-like member not spelled "token", gets an error reply. Neither
// moves the session's expiry, which a real refresh does.
func TestAuthRefreshExactNames(t *testing.T) {
	t.Parallel()
	for _, firstMessage := range []bool{false, true} {
		t.Run(fmt.Sprintf("first message %v", firstMessage), func(t *testing.T) {
			t.Parallel()
			f := newAuthFixture(t)
			var calls atomic.Int32
			h := wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
				calls.Add(1)
				return whoami(ctx, s, m)
			})
			_, url := f.server(t, h, f.options(func(a *wssafe.AuthOptions) { a.AllowRefresh = true }))
			exp := f.clock.Now().Add(time.Minute)
			open := func() *websocket.Conn {
				tok := f.token(claims{"exp": exp})
				if !firstMessage {
					return dial(t, url, bearer(tok))
				}
				c := dial(t, url, nil)
				sendMsg(t, c, websocket.MessageText, tok)
				return c
			}
			freshExp := f.clock.Now().Add(time.Hour)
			fresh := f.token(claims{"exp": freshExp})

			c := open()
			var want int32
			for _, msg := range []string{
				`{"TYPE":"refresh","Token":"` + fresh + `"}`,
				`{"Type":"refresh","token":"` + fresh + `"}`,
				`{"tYpE":"refresh","TOKEN":"` + fresh + `"}`,
			} {
				assert.Equal(t, "alice|alice|"+msg, roundTrip(t, c, msg), "an ordinary message")
				want++
			}
			for _, msg := range []string{
				`{"type":"refresh","TYPE":"refresh","token":"` + fresh + `"}`,
				`{"TYPE":"refresh","type":"refresh","token":"` + fresh + `"}`,
				`{"type":"chat","TYPE":"refresh","token":"` + fresh + `"}`,
				`{"type":"refresh","Token":"` + fresh + `"}`,
				`{"type":"refresh","token":"` + fresh + `","Token":"` + fresh + `"}`,
				`{"type":"refresh","type":"refresh","token":"` + fresh + `"}`,
				`{"type":"refresh","token":"` + fresh + `","token":"` + fresh + `"}`,
			} {
				var reply struct{ Type, Code, Field string }
				require.NoError(t, json.Unmarshal([]byte(roundTrip(t, c, msg)), &reply), msg)
				assert.Equal(t, "error", reply.Type, msg)
				assert.Equal(t, wssafe.CodeInvalidMessage, reply.Code, msg)
				assert.Equal(t, "type", reply.Field, msg)
			}
			assert.Equal(t, want, calls.Load(), "ambiguous refreshes must not reach the handler")
			assert.Contains(t, f.logs.String(), `"rule":"refresh_ambiguous"`)
			assert.NotContains(t, f.logs.String(), `"event":"token_refreshed"`)
			f.clock.Advance(2 * time.Minute) // the first token's exp has passed: nothing refreshed it
			assert.Equal(t, "token expired", readClose(t, c).Reason)

			// The exact spelling refreshes, also with \u escapes, which
			// are the same names and values to every JSON parser.
			exp = f.clock.Now().Add(time.Minute)
			for _, msg := range []string{
				`{"type":"refresh","token":"` + fresh + `"}`,
				`{"\u0074ype":"r\u0065fresh","token":"` + fresh + `","id":7}`,
			} {
				c := open()
				got := roundTrip(t, c, msg)
				assert.JSONEq(t, fmt.Sprintf(`{"type":"refreshed","exp":%d}`, freshExp.Unix()), got, msg)
				c.Close(websocket.StatusNormalClosure, "")
			}
			assert.Equal(t, want, calls.Load())
		})
	}
}
