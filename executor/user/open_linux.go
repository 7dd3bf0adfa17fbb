package user

import (
	"fmt"
	"os"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// openInRoot opens name for reading as if rootfs were "/": symlinks resolve
// inside rootfs (openat2 RESOLVE_IN_ROOT where the kernel has it). Only a
// regular file is opened, so a FIFO cannot block the caller.
func openInRoot(rootfs, name string) (*os.File, error) {
	h, err := pathrs.OpenInRoot(rootfs, name)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(h.Fd()), &st); err != nil {
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	return pathrs.Reopen(h, unix.O_RDONLY|unix.O_CLOEXEC)
}
