package file

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// attrs is the metadata an entry the op writes gets.
type attrs struct {
	uid, gid int
	perm     uint32 // permission bits with setuid, setgid and sticky
	mtime    unix.Timespec
}

// statOf returns the raw stat of a FileInfo from Lstat.
func statOf(fi os.FileInfo) *unix.Stat_t {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	return &unix.Stat_t{
		Dev: st.Dev, Ino: st.Ino, Nlink: st.Nlink, Mode: st.Mode,
		Uid: st.Uid, Gid: st.Gid, Rdev: st.Rdev, Size: st.Size,
		Mtim: unix.Timespec{Sec: st.Mtim.Sec, Nsec: st.Mtim.Nsec},
	}
}

// specTime converts Unix seconds to a timespec.
func specTime(sec int64) unix.Timespec { return unix.Timespec{Sec: sec} }

// now returns the current time as a timespec.
func now() unix.Timespec { return unix.NsecToTimespec(time.Now().UnixNano()) }

// setOwnerMode sets the owner and then the mode of path, which must not be
// a symbolic link (the op has just created it or checked it). chown clears
// setuid and setgid, so the mode comes second.
func setOwnerMode(path string, a attrs) error {
	if err := os.Lchown(path, a.uid, a.gid); err != nil {
		return err
	}
	if err := unix.Fchmodat(unix.AT_FDCWD, path, a.perm&modePerm, 0); err != nil {
		return &os.PathError{Op: "chmod", Path: path, Err: err}
	}
	return nil
}

// setTimes sets the access and modification times of path (not following
// a link in its last element) to t.
func setTimes(path string, t unix.Timespec) error {
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, path, []unix.Timespec{t, t}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimes", Path: path, Err: err}
	}
	return nil
}

// skipXattr reports whether an extended attribute stays behind when an
// entry is copied: overlayfs's own bookkeeping and host security labels.
func skipXattr(name string) bool {
	return strings.HasPrefix(name, "trusted.overlay.") || name == "security.selinux"
}

// copyXattrs copies the extended attributes of src to dst (neither
// followed if a link). Filesystems without xattr support are not an error.
func copyXattrs(dst, src string) error {
	names, err := listXattrs(src)
	if err != nil || len(names) == 0 {
		return err
	}
	for _, name := range names {
		if skipXattr(name) {
			continue
		}
		v, err := getXattr(src, name)
		if err != nil {
			if errors.Is(err, unix.ENODATA) {
				continue
			}
			return &os.PathError{Op: "getxattr " + name, Path: src, Err: err}
		}
		if err := unix.Lsetxattr(dst, name, v, 0); err != nil {
			if isNotSupported(err) {
				continue
			}
			return &os.PathError{Op: "setxattr " + name, Path: dst, Err: err}
		}
	}
	return nil
}

func isNotSupported(err error) bool {
	return errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP)
}

func listXattrs(path string) ([]string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Llistxattr(path, buf)
		if errors.Is(err, unix.ERANGE) {
			sz, err := unix.Llistxattr(path, nil)
			if err != nil {
				return nil, &os.PathError{Op: "listxattr", Path: path, Err: err}
			}
			buf = make([]byte, sz+64)
			continue
		}
		if err != nil {
			if isNotSupported(err) {
				return nil, nil
			}
			return nil, &os.PathError{Op: "listxattr", Path: path, Err: err}
		}
		var names []string
		for _, s := range strings.Split(string(buf[:n]), "\x00") {
			if s != "" {
				names = append(names, s)
			}
		}
		return names, nil
	}
}

func getXattr(path, name string) ([]byte, error) {
	buf := make([]byte, 128)
	for {
		n, err := unix.Lgetxattr(path, name, buf)
		if errors.Is(err, unix.ERANGE) {
			sz, err := unix.Lgetxattr(path, name, nil)
			if err != nil {
				return nil, err
			}
			buf = make([]byte, sz+64)
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

// removeExisting removes whatever is at path (a directory with all it
// holds) so that a new entry can take its place. os.RemoveAll does not
// follow links.
func removeExisting(path string, fi os.FileInfo) error {
	if fi.IsDir() {
		return os.RemoveAll(path)
	}
	return os.Remove(path)
}

// writeRegular creates the regular file dst (which must not exist) with
// src's content and then a's owner, mode and time; xattrs come from
// xattrsFrom when it is not "". The content is copied with io.Copy, which
// uses copy_file_range where the kernel can.
func writeRegular(dst string, src io.Reader, a attrs, xattrsFrom string) (err error) {
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if _, err := io.Copy(f, src); err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	if err := f.Chown(a.uid, a.gid); err != nil {
		return err
	}
	if err := unix.Fchmod(int(f.Fd()), a.perm&modePerm); err != nil {
		return &os.PathError{Op: "chmod", Path: dst, Err: err}
	}
	if xattrsFrom != "" {
		if err := copyXattrs(dst, xattrsFrom); err != nil {
			return err
		}
	}
	return unix.UtimesNanoAt(unix.AT_FDCWD, dst, []unix.Timespec{a.mtime, a.mtime}, unix.AT_SYMLINK_NOFOLLOW)
}

// copyRegular copies the regular file src to dst (see writeRegular).
func copyRegular(dst, src string, a attrs, keepXattrs bool) error {
	f, err := os.OpenFile(src, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	from := ""
	if keepXattrs {
		from = src
	}
	return writeRegular(dst, f, a, from)
}

// timestampOf converts an optional Unix time in seconds.
func timestampOf(sec *int64) *unix.Timespec {
	if sec == nil {
		return nil
	}
	t := specTime(*sec)
	return &t
}
