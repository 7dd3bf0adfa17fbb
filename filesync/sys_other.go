//go:build !unix

package filesync

import (
	"errors"
	"io/fs"
	"os"
)

func owner(fs.FileInfo) (uid, gid uint32) { return 0, 0 }

type fileID struct{ dev, ino uint64 }

// linkID: hard links are not detected here; they are sent as files.
func linkID(fs.FileInfo) (fileID, bool) { return fileID{}, false }

func mkfifo(path string) error {
	return &fs.PathError{Op: "mkfifo", Path: path, Err: errors.ErrUnsupported}
}

// wireMode gives files and directories the permissions Docker gives a
// context sent from Windows (rwxr-xr-x): Windows has no unix modes.
func wireMode(m fs.FileMode) fs.FileMode {
	if m&fs.ModeSymlink != 0 {
		return m
	}
	return m.Type() | 0o755
}

func openNoFollow(name string) (*os.File, error) {
	fi, err := os.Lstat(name)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	return os.Open(name)
}

// lutimes is a no-op where links have no settable times.
func lutimes(string, int64) error { return nil }
