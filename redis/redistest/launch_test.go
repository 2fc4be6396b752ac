package redistest

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// Launch without a testing.TB, as the benchmarks use it: under a wrapper
// (taskset), with its Pid, and Close removes everything.
func TestLaunchWrapped(t *testing.T) {
	Binary(t)
	cfg := Config{}
	if _, err := exec.LookPath("taskset"); err == nil {
		cfg.Wrapper = []string{"taskset", "-c", "0"}
	}
	s, err := Launch(cfg)
	if errors.Is(err, ErrNotFound) {
		if os.Getenv("CI") == "true" {
			t.Fatal(err, "(CI=true: this test must run)")
		}
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if !ping(s.Addr()) || s.Pid() == 0 {
		t.Fatalf("not running: pid %d", s.Pid())
	}
	if exe, err := os.Readlink("/proc/" + strconv.Itoa(s.Pid()) + "/exe"); err == nil && cfg.Wrapper != nil {
		if b, _ := exec.LookPath("redis-server"); exe != b && !sameFile(exe, b) {
			t.Fatalf("pid %d is %s, not the server", s.Pid(), exe)
		}
	}
	s.Close()
	if ping(s.Addr()) || s.Pid() != 0 {
		t.Fatal("still running after Close")
	}
	if _, err := os.Stat(s.Dir); !os.IsNotExist(err) {
		t.Fatalf("the directory is left: %v", err)
	}
}

func sameFile(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}
