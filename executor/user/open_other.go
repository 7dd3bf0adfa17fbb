//go:build !linux

package user

import (
	"fmt"
	"os"

	securejoin "github.com/cyphar/filepath-securejoin"
)

// openInRoot opens name for reading as if rootfs were "/". Without openat2
// this resolves the path first and then opens it, which is racy against a
// concurrent writer of rootfs; Kiln's daemon runs on Linux only.
func openInRoot(rootfs, name string) (*os.File, error) {
	p, err := securejoin.SecureJoin(rootfs, name)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	return os.Open(p)
}
