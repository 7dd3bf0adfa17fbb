//go:build !unix

package filesync

import (
	"io/fs"
	"os"
)

func owner(fs.FileInfo) (uid, gid uint32) { return 0, 0 }

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
