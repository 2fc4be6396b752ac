//go:build unix

package serve

import (
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/wssafe/wssafe"
)

// logStatsOnSignal logs ep's Stats on every SIGUSR1 until the returned
// function is called.
func logStatsOnSignal(log *slog.Logger, ep *wssafe.Endpoint) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR1)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-ch:
				log.Info("stats", "stats", ep.Stats())
			case <-done:
				return
			}
		}
	}()
	return func() { signal.Stop(ch); close(done) }
}
