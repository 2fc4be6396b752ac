package wssafe_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe"
)

// TestSendTooLargeIsTheServersError: a message too large for the send
// queue is the server's own, not the peer's: Send returns ErrSendTooLarge,
// not ErrMessageTooBig, and a callback that returns it closes 1011 with a
// handler_error log line, never 1009.
func TestSendTooLargeIsTheServersError(t *testing.T) {
	t.Parallel()
	errs := make(chan error, 1)
	h := wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		err := s.Send(wssafe.MessageText, make([]byte, 2048))
		errs <- err
		return err
	})
	logger, logs := newLogger()
	ep, url := server(t, h, &wssafe.Options{SendQueueBytes: 1024, Logger: logger})
	c := dial(t, url, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte("x")))

	err := <-errs
	assert.ErrorIs(t, err, wssafe.ErrSendTooLarge)
	assert.NotErrorIs(t, err, wssafe.ErrMessageTooBig, "the peer sent nothing too big")
	assert.Equal(t, wssafe.StatusInternalError, readClose(t, c).Code)
	waitForLog(t, logs, `"event":"handler_error"`)
	require.Eventually(t, func() bool { return ep.Stats().Closed[wssafe.StatusInternalError] == 1 },
		5*time.Second, 10*time.Millisecond)
	assert.Zero(t, ep.Stats().Closed[wssafe.StatusMessageTooBig])
	code, reason := wssafe.CloseFrame(err)
	assert.Equal(t, wssafe.StatusInternalError, code)
	assert.Equal(t, "internal error", reason)
	assert.False(t, errors.Is(wssafe.ErrSendTooLarge, wssafe.ErrMessageTooBig))
}
