//go:build unix

package wssafe

import (
	"os"
	"syscall"
)

// canReadRaw: a socket's file descriptor can be read with read(2).
const canReadRaw = true

func readRaw(fd uintptr, b []byte) (int, error) { return syscall.Read(int(fd), b) }

func wrapSyscallError(name string, err error) error { return os.NewSyscallError(name, err) }
