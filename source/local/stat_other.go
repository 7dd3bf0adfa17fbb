//go:build !linux

package local

import (
	"io/fs"
	"os"
)

// statItem describes the entry at name (not following a link). Without
// statx the cache identity lacks the inode and birth time.
func statItem(name string) (item, error) {
	fi, err := os.Lstat(name)
	if err != nil {
		return item{}, err
	}
	m := fi.Mode()
	it := item{mode: uint32(m.Perm())}
	if m&fs.ModeSetuid != 0 {
		it.mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		it.mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		it.mode |= 0o1000
	}
	switch {
	case m.IsRegular():
		it.kind = 'f'
	case m.IsDir():
		it.kind = 'd'
	case m&fs.ModeSymlink != 0:
		it.kind, it.mode = 'l', 0
	default:
		it.kind = 'o'
		it.mode = uint32(m)
	}
	it.id = fileID{Size: fi.Size(), Mtime: fi.ModTime().UnixNano(), Mode: uint32(m)}
	return it, nil
}
