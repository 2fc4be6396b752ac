package wssafe_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wssafe/wssafe"
)

func TestWriteTimeoutDropsAPeerThatDoesNotRead(t *testing.T) {
	t.Parallel()
	for _, path := range writePaths {
		t.Run(path.name, func(t *testing.T) {
			t.Parallel()
			testWriteTimeout(t, path.hooks)
		})
	}
}

func testWriteTimeout(t *testing.T, hooks wssafe.Hooks) {
	log, logs := newLogger()
	writeErr := make(chan error, 1)
	closed := make(chan error, 1)
	_, url := serverWith(t, wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		big := make([]byte, 1<<20)
		for {
			if err := s.Write(ctx, wssafe.MessageBinary, big); err != nil {
				writeErr <- err
				return err
			}
		}
	}), &wssafe.Options{
		WriteTimeout: 100 * time.Millisecond,
		OnClose:      func(s *wssafe.Session, err error) { closed <- err },
		Logger:       log,
	}, hooks)
	c := dial(t, url, nil)
	require.NoError(t, c.Write(ctxT(t), websocket.MessageText, []byte("flood me"))) // and never read
	assert.ErrorIs(t, <-writeErr, wssafe.ErrWriteTimeout)
	assert.ErrorIs(t, <-closed, wssafe.ErrWriteTimeout)
	assert.Contains(t, logs.String(), `"event":"write_timeout"`)
}

func TestConcurrentWrites(t *testing.T) {
	t.Parallel()
	for _, path := range writePaths {
		t.Run(path.name, func(t *testing.T) {
			t.Parallel()
			testConcurrentWrites(t, path.hooks)
		})
	}
}

func testConcurrentWrites(t *testing.T, hooks wssafe.Hooks) {
	const writers, each = 20, 50
	_, url := serverWith(t, wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					s.WriteText(ctx, fmt.Sprintf("w%02d-%03d-%s", w, i, strings.Repeat("z", 100)))
				}
			})
		}
		wg.Wait()
		return nil
	}), nil, hooks)
	c := dial(t, url, nil)
	ctx := ctxT(t)
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte("go")))
	next := make([]int, writers)
	for range writers * each {
		_, got, err := c.Read(ctx)
		require.NoError(t, err)
		var w, i int
		_, err = fmt.Sscanf(string(got[:7]), "w%02d-%03d", &w, &i)
		require.NoError(t, err, "frame interleaved: %q", got)
		require.Equal(t, next[w], i, "writer %d out of order", w)
		require.Len(t, got, 8+100)
		next[w]++
	}
}

// Closing a session whose write is blocked on a peer that does not read
// ends it within the close path's bound, even with no write timeout.
func TestCloseWhileAWriteIsBlocked(t *testing.T) {
	t.Parallel()
	for _, path := range writePaths {
		t.Run(path.name, func(t *testing.T) {
			t.Parallel()
			sessions := make(chan *wssafe.Session, 1)
			closed := make(chan error, 1)
			_, url := serverWith(t, wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
				sessions <- s
				big := make([]byte, 1<<20)
				for {
					if err := s.Write(ctx, wssafe.MessageBinary, big); err != nil {
						return err
					}
				}
			}), &wssafe.Options{
				WriteTimeout: -1,
				OnClose:      func(s *wssafe.Session, err error) { closed <- err },
			}, path.hooks)
			c := dial(t, url, nil)
			require.NoError(t, c.Write(ctxT(t), websocket.MessageText, []byte("flood me"))) // and never read
			s := <-sessions
			start := time.Now()
			s.Close(nil)
			<-closed
			assert.Less(t, time.Since(start), 9*time.Second, "coder/websocket's 5 s bound, and slack for -race")
		})
	}
}
