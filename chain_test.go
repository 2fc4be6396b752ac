package wssafe_test

import (
	"context"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wssafe/wssafe"
)

func TestPanicCloses1011AndSparesOthers(t *testing.T) {
	t.Parallel()
	log, logs := newLogger()
	_, url := server(t, wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		if m.Text() == "boom" {
			panic("kaboom")
		}
		return echo(ctx, s, m)
	}), &wssafe.Options{Logger: log})
	other := dial(t, url, nil)
	c := dial(t, url, nil)
	require.NoError(t, c.Write(ctxT(t), websocket.MessageText, []byte("boom")))
	ce := readClose(t, c)
	assert.Equal(t, websocket.StatusInternalError, ce.Code)
	assert.Equal(t, "internal error", ce.Reason)

	ctx := ctxT(t)
	require.NoError(t, other.Write(ctx, websocket.MessageText, []byte("hi")))
	_, got, err := other.Read(ctx)
	require.NoError(t, err)
	assert.Equal(t, "Server received: hi", string(got))

	out := logs.String()
	assert.Equal(t, 1, strings.Count(out, `"event":"panic"`), "stack logged once")
	assert.Contains(t, out, "kaboom")
	assert.Contains(t, out, "goroutine") // the stack
}
