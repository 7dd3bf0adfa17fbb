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

// fileID is the identity of a file on its filesystem.
type fileID struct{ dev, ino uint64 }

// linkID returns the identity of a regular file that has other names
// (hard links), or false.
func linkID(fi fs.FileInfo) (fileID, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || !fi.Mode().IsRegular() || st.Nlink < 2 {
		return fileID{}, false
	}
	return fileID{dev: uint64(st.Dev), ino: st.Ino}, true
}

// mkfifo makes a named pipe at path.
func mkfifo(path string) error {
	if err := unix.Mkfifo(path, 0o600); err != nil {
		return &fs.PathError{Op: "mkfifo", Path: path, Err: err}
	}
	return nil
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
