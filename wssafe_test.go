package wssafe_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wssafe/wssafe"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestEchoProtocol(t *testing.T) {
	t.Parallel()
	_, url := server(t, echo, nil)
	c := dial(t, url, nil)
	ctx := ctxT(t)
	for _, msg := range []string{"hello", "", "xin chào", `{"a":1}`, strings.Repeat("x", 20000)} {
		require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(msg)))
		typ, got, err := c.Read(ctx)
		require.NoError(t, err)
		assert.Equal(t, websocket.MessageText, typ)
		assert.Equal(t, "Server received: "+msg, string(got))
	}
	require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))
}

func TestNewRefusesBadOptions(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		h    wssafe.Handler
		opts *wssafe.Options
		want string
	}{
		"nil handler":       {nil, nil, "needs a Handler"},
		"bad origin":        {echo, &wssafe.Options{OriginPatterns: []string{"[a-"}}, "origin pattern"},
		"negative limit":    {echo, &wssafe.Options{ReadLimit: -1}, "ReadLimit"},
		"unknown type":      {echo, &wssafe.Options{Accept: []wssafe.MessageType{7}}, "unknown message type"},
		"bad proxy network": {echo, &wssafe.Options{TrustedProxies: []string{"10.0.0.1"}}, "CIDR"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ep, err := wssafe.New(tc.h, tc.opts)
			require.Error(t, err)
			assert.Nil(t, ep)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestNewDoesNotMutateOptions(t *testing.T) {
	t.Parallel()
	opts := &wssafe.Options{}
	_, err := wssafe.New(echo, opts)
	require.NoError(t, err)
	assert.Equal(t, &wssafe.Options{}, opts)
}

func TestSubjectLimitsNeedAuth(t *testing.T) {
	t.Parallel()
	_, err := wssafe.New(echo, &wssafe.Options{MaxConnsPerSubject: 2})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "MaxConnsPerSubject needs Auth")
	assert.Contains(t, err.Error(), "MaxConnsPerIP")

	_, err = wssafe.New(echo, &wssafe.Options{SubjectMessageRate: wssafe.Rate{PerSecond: 5}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "SubjectMessageRate needs Auth")
	assert.Contains(t, err.Error(), "MessageRate")

	o := &wssafe.Options{MaxConnsPerSubject: 2, SubjectMessageRate: wssafe.Rate{PerSecond: 5},
		Auth: &wssafe.AuthOptions{HMACSecret: randomSecret(t)}}
	_, err = wssafe.New(echo, o)
	assert.NoError(t, err)
}
