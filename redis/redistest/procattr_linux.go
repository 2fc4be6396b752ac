package redistest

import "syscall"

// procAttr kills the server when the test binary dies, so that a crashed
// or interrupted test leaves no redis-server behind.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
