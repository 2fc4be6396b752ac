package wssafe_test

import (
	"context"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe"
)

// Compression negotiates permessage-deflate without context takeover in
// either direction, even when the client offers context takeover; without
// it no extension is negotiated.
func TestCompressionNegotiated(t *testing.T) {
	t.Parallel()
	compressed := make(chan bool, 1)
	h := wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		compressed <- s.Compressed()
		return s.Write(ctx, m.Type, m.Data)
	})
	for _, row := range []struct {
		name string
		opts *wssafe.Options
		mode websocket.CompressionMode
		want string
	}{
		{"off", nil, websocket.CompressionNoContextTakeover, ""},
		{"on", &wssafe.Options{Compression: true}, websocket.CompressionNoContextTakeover, "permessage-deflate; client_no_context_takeover; server_no_context_takeover"},
		{"client offers takeover", &wssafe.Options{Compression: true}, websocket.CompressionContextTakeover, "permessage-deflate; client_no_context_takeover; server_no_context_takeover"},
		{"client offers nothing", &wssafe.Options{Compression: true}, websocket.CompressionDisabled, ""},
	} {
		t.Run(row.name, func(t *testing.T) {
			_, url := server(t, h, row.opts)
			c, ext := dialDeflate(t, url, row.mode)
			assert.Equal(t, row.want, ext)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			require.NoError(t, c.Write(ctx, websocket.MessageText, []byte("hello")))
			_, got, err := c.Read(ctx)
			require.NoError(t, err)
			assert.Equal(t, "hello", string(got))
			assert.Equal(t, row.want != "", <-compressed)
		})
	}
}

// The compression settings are refused without Compression, and negative.
func TestCompressionOptionsRefused(t *testing.T) {
	t.Parallel()
	for _, o := range []wssafe.Options{
		{CompressionThreshold: 100},
		{MaxInflationRatio: 10},
		{InsecureCompressionContextTakeover: true},
		{Compression: true, CompressionThreshold: -1},
		{Compression: true, MaxInflationRatio: -1},
	} {
		_, err := wssafe.New(echo, &o)
		assert.Error(t, err, "%+v", o)
	}
}
