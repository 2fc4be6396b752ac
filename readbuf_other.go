//go:build !unix

package wssafe

import (
	"errors"
	"os"
)

// canReadRaw: elsewhere connections read into a buffer of their own.
const canReadRaw = false

func readRaw(uintptr, []byte) (int, error) { return 0, errors.ErrUnsupported }

func wrapSyscallError(name string, err error) error { return os.NewSyscallError(name, err) }
