package wssafe_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/wssafe/wssafe"
)

// SendPrepared refuses a nil or zero PreparedMessage with an error, and
// the session goes on.
func TestSendPreparedRefusesNilAndZero(t *testing.T) {
	t.Parallel()
	h := wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		var out string
		switch m.Text() {
		case "nil":
			out = errText(s.SendPrepared(nil))
		case "zero":
			out = errText(s.SendPrepared(&wssafe.PreparedMessage{}))
		default:
			out = errText(s.SendPrepared(wssafe.NewPreparedMessage(wssafe.MessageText, []byte("prepared"))))
		}
		return s.WriteText(ctx, out)
	})
	_, url := serverWith(t, h, nil, wssafe.Hooks{})
	c := dial(t, url, nil)
	assert.Equal(t, "wssafe: SendPrepared of a nil *PreparedMessage; make one with NewPreparedMessage", roundTrip(t, c, "nil"))
	assert.Equal(t, "wssafe: a message's type must be MessageText or MessageBinary", roundTrip(t, c, "zero"))
	assert.Equal(t, "prepared", roundTrip(t, c, "ok"), "the session goes on")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, b, err := c.Read(ctx)
	assert.NoError(t, err)
	assert.Equal(t, "ok", string(b))
}

func errText(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}
