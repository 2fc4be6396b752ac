package wssafe_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/wssafe/wssafe"
)

func TestCloseFrameTable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err    error
		code   wssafe.StatusCode
		reason string
	}{
		{nil, 1000, ""},
		{context.Canceled, 1000, ""},
		{wssafe.ErrMessageTooBig, 1009, "message too big"},
		{fmt.Errorf("%w: over 5 bytes", wssafe.ErrMessageTooBig), 1009, "message too big"},
		{wssafe.ErrInvalidUTF8, 1007, "invalid utf-8"},
		{wssafe.ErrUnsupportedType, 1003, "unsupported message type"},
		{wssafe.ErrRateLimited, 1008, "rate limit exceeded"},
		{wssafe.ErrSlowConsumer, 1008, "slow consumer"},
		{wssafe.ErrPongTimeout, 3008, "timeout"},
		{wssafe.ErrShutdown, 1001, "going away"},
		{wssafe.ErrInvalidToken, 3000, "invalid token"},
		{wssafe.ErrTokenExpired, 3000, "token expired"},
		{wssafe.ErrForbidden, 3003, "forbidden"},
		{wssafe.ErrAuthTimeout, 3008, "authentication timeout"},
		{fmt.Errorf("wrapped: %w", wssafe.ErrPanic), 1011, "internal error"},
		{errors.New("secret detail"), 1011, "internal error"},
		{fmt.Errorf("x: %w", &wssafe.CloseError{Code: 4000, Reason: "r"}), 4000, "r"},
	} {
		code, reason := wssafe.CloseFrame(tc.err)
		assert.Equal(t, tc.code, code, "%v", tc.err)
		assert.Equal(t, tc.reason, reason, "%v", tc.err)
	}
	assert.True(t, wssafe.IsExpectedClose(wssafe.ErrShutdown))
	assert.False(t, wssafe.IsExpectedClose(wssafe.ErrPanic))
	assert.Equal(t, wssafe.StatusCode(-1), wssafe.CloseStatus(errors.New("x")))
}
