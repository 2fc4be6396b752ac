//go:build !unix

package serve

import (
	"log/slog"

	"github.com/wssafe/wssafe"
)

// logStatsOnSignal does nothing where there is no SIGUSR1.
func logStatsOnSignal(*slog.Logger, *wssafe.Endpoint) (stop func()) { return func() {} }
