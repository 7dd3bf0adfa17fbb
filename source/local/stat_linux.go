package local

import (
	"io/fs"

	"golang.org/x/sys/unix"
)

// statItem describes the entry at name (not following a link) with the
// identity the hash cache checks. statx gives the birth time that lstat
// lacks.
func statItem(name string) (item, error) {
	var st unix.Statx_t
	err := unix.Statx(unix.AT_FDCWD, name, unix.AT_SYMLINK_NOFOLLOW|unix.AT_STATX_SYNC_AS_STAT,
		unix.STATX_TYPE|unix.STATX_MODE|unix.STATX_INO|unix.STATX_SIZE|unix.STATX_MTIME|unix.STATX_BTIME, &st)
	if err != nil {
		return item{}, &fs.PathError{Op: "statx", Path: name, Err: err}
	}
	it := item{mode: uint32(st.Mode) & 0o7777}
	switch uint32(st.Mode) & unix.S_IFMT {
	case unix.S_IFREG:
		it.kind = 'f'
	case unix.S_IFDIR:
		it.kind = 'd'
	case unix.S_IFLNK:
		it.kind = 'l'
		it.mode = 0 // a link has no meaningful mode on Linux
	default:
		it.kind = 'o'
		it.mode = uint32(st.Mode) // type bits too: a FIFO is not a socket
	}
	it.id = fileID{
		Ino:   st.Ino,
		Size:  int64(st.Size),
		Mtime: st.Mtime.Sec*1e9 + int64(st.Mtime.Nsec),
		Mode:  uint32(st.Mode),
	}
	if st.Mask&unix.STATX_BTIME != 0 {
		it.id.Btime = st.Btime.Sec*1e9 + int64(st.Btime.Nsec)
	}
	return it, nil
}
