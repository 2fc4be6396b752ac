package wssafe_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe"
)

// An idle session keeps only what it needs; what it may need later (the
// redacted header, the session logger's attributes, the ping and
// invalid-message limiters) is made on first use. These tests check that
// each still behaves as if it had been made up front.

func TestSessionHeaderRedactedOnDemand(t *testing.T) {
	t.Parallel()
	got := make(chan http.Header, 1)
	_, url := server(t, mirrorHandler, &wssafe.Options{OnOpen: func(s *wssafe.Session) error {
		got <- s.Header()
		return nil
	}})
	h := http.Header{}
	h.Set("Authorization", "Bearer test-only-not-a-token")
	h.Set("Cookie", "sid=test-only")
	h.Set("X-Trace", "abc")
	dial(t, url, &websocket.DialOptions{HTTPHeader: h})
	hdr := <-got
	assert.Empty(t, hdr.Get("Authorization"))
	assert.Empty(t, hdr.Get("Cookie"))
	assert.Empty(t, hdr.Get("Sec-WebSocket-Key"))
	assert.Equal(t, "abc", hdr.Get("X-Trace"))
}

func TestSessionLoggerCarriesSession(t *testing.T) {
	t.Parallel()
	logger, logs := newLogger()
	ids := make(chan string, 1)
	_, url := server(t, mirrorHandler, &wssafe.Options{Logger: logger, OnOpen: func(s *wssafe.Session) error {
		s.Logger().Info("plain", "k", 1)
		s.Logger().WithGroup("g").Info("grouped", "k", 2)
		ids <- s.ID()
		return nil
	}})
	dial(t, url, nil)
	id := <-ids
	for _, msg := range []string{"plain", "grouped"} {
		line := findLogLine(t, logs.String(), msg)
		assert.Equal(t, id, line["session"], "%s: session ID at the top level", msg)
		assert.NotEmpty(t, line["remote"], "%s: remote address at the top level", msg)
	}
	assert.Equal(t, map[string]any{"k": 2.0}, findLogLine(t, logs.String(), "grouped")["g"])
}

func findLogLine(t *testing.T, logs, msg string) map[string]any {
	t.Helper()
	for _, l := range strings.Split(logs, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == msg {
			return m
		}
	}
	require.Failf(t, "no log line", "message %q not logged", msg)
	return nil
}

func TestInvalidMessageBudget(t *testing.T) {
	t.Parallel()
	refuse := wssafe.HandlerFunc(func(context.Context, *wssafe.Session, wssafe.Message) error {
		return &wssafe.MessageError{Code: "invalid_message", Message: "test refusal"}
	})
	_, url := server(t, refuse, &wssafe.Options{InvalidMessages: wssafe.Rate{PerSecond: 0.001, Burst: 2}})
	c := dial(t, url, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := 0; i < 2; i++ {
		require.NoError(t, c.Write(ctx, websocket.MessageText, []byte("x")))
		_, reply, err := c.Read(ctx)
		require.NoError(t, err)
		assert.Contains(t, string(reply), `"code":"invalid_message"`)
	}
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte("x")))
	ce := readClose(t, c)
	assert.Equal(t, websocket.StatusPolicyViolation, ce.Code)
	assert.Equal(t, "too many invalid messages", ce.Reason)
}
