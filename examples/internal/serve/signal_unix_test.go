//go:build unix

package serve

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestSIGUSR1LogsStats(t *testing.T) {
	ep, err := wssafe.New(wssafe.HandlerFunc(func(context.Context, *wssafe.Session, wssafe.Message) error { return nil }), nil)
	require.NoError(t, err)
	var out syncBuf
	stop := logStatsOnSignal(slog.New(slog.NewJSONHandler(&out, nil)), ep)
	defer stop()
	require.NoError(t, syscall.Kill(syscall.Getpid(), syscall.SIGUSR1))
	require.Eventually(t, func() bool { return strings.Contains(out.String(), `"msg":"stats"`) },
		5*time.Second, 10*time.Millisecond)
	require.Contains(t, out.String(), `"active":0`)
}
