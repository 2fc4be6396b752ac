package wssafe_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A real binary, which carries its dependencies' versions (a test binary
// does not), takes the direct write path with the coder/websocket version
// of go.mod: the version guard recognises it. The probe program is built
// from this module alone (GOWORK=off), as an application's build would
// resolve it.
func TestCoderDirectInRealBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the build of testdata/coderdirect, a real binary that checks the coder/websocket version guard")
	}
	t.Parallel()
	goBin, err := exec.LookPath("go")
	require.NoError(t, err)
	bin := filepath.Join(t.TempDir(), "coderdirect")
	build := exec.Command(goBin, "build", "-tags", "wssafe_probe", "-o", bin, "./testdata/coderdirect")
	build.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)

	mods, err := exec.Command(goBin, "version", "-m", bin).Output()
	require.NoError(t, err)
	assert.Contains(t, string(mods), "github.com/coder/websocket\tv1.8.15", "the binary records coder's version")
	got, err := exec.Command(bin).Output()
	require.NoError(t, err)
	assert.Equal(t, "direct", strings.TrimSpace(string(got)))
}
