package redis

import (
	"context"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/wssafe/wssafe/internal/leakcheck"
)

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// TestMain fails the run if a test leaves a goroutine behind.
func TestMain(m *testing.M) {
	// go-redis's own pool errors during the outages the tests cause.
	goredis.SetLogger(quiet{})
	// exec.Cmd's goroutines do not outlive Kill, but may be listed while a
	// test ends.
	leakcheck.Main(m, leakcheck.Containing("os/exec.(*Cmd)"))
}
