//go:build unix

package filesync

import (
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// owner returns the numeric owner of fi.
func owner(fi fs.FileInfo) (uid, gid uint32) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Uid, st.Gid
	}
	return 0, 0
}

// wireMode is the mode sent for an entry.
func wireMode(m fs.FileMode) fs.FileMode { return m }

// openNoFollow opens a regular file for reading, failing if the final
// component has become a symbolic link since the walk.
func openNoFollow(name string) (*os.File, error) {
	return os.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
}

// lutimes sets the access and modification times of a symbolic link
// itself (unix nanoseconds).
func lutimes(name string, nsec int64) error {
	ts := unix.NsecToTimespec(nsec)
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, name, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &fs.PathError{Op: "lutimes", Path: name, Err: err}
	}
	return nil
}
