package snapshot_test

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/continuity/sysx"
	"golang.org/x/sys/unix"
)

// entry is everything the round-trip tests compare about one path.
type entry struct {
	Type    string // reg, dir, symlink, fifo, char, block
	Mode    os.FileMode
	UID     int
	GID     int
	Content string // sha256 of a regular file
	Link    string // symlink target
	Dev     string // major:minor of a device
	Xattrs  map[string]string
	LinkSet string // for hard links: the first path of the inode's names
	MTime   int64  // regular files only, in seconds
}

// statTree reads the metadata of every path under dir.
func statTree(t *testing.T, dir string) map[string]entry {
	t.Helper()
	tree := map[string]entry{}
	inodes := map[uint64][]string{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		st := fi.Sys().(*syscall.Stat_t)
		e := entry{Mode: fi.Mode() & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky), UID: int(st.Uid), GID: int(st.Gid)}
		switch {
		case fi.Mode().IsRegular():
			e.Type = "reg"
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			e.Content = hex.EncodeToString(sum[:8])
			e.MTime = fi.ModTime().Unix()
			if st.Nlink > 1 {
				inodes[st.Ino] = append(inodes[st.Ino], rel)
			}
		case fi.IsDir():
			e.Type = "dir"
		case fi.Mode()&os.ModeSymlink != 0:
			e.Type = "symlink"
			e.Mode = 0 // symlink modes are meaningless on Linux
			e.Link, err = os.Readlink(p)
			if err != nil {
				return err
			}
		case fi.Mode()&os.ModeNamedPipe != 0:
			e.Type = "fifo"
		case fi.Mode()&os.ModeCharDevice != 0:
			e.Type = "char"
			e.Dev = fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		case fi.Mode()&os.ModeDevice != 0:
			e.Type = "block"
			e.Dev = fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		default:
			e.Type = fi.Mode().Type().String()
		}
		names, err := sysx.LListxattr(p)
		if err != nil && !errors.Is(err, unix.ENOTSUP) {
			return err
		}
		for _, n := range names {
			if !strings.HasPrefix(n, "user.") && n != "security.capability" {
				continue
			}
			v, err := sysx.LGetxattr(p, n)
			if err != nil {
				return err
			}
			if e.Xattrs == nil {
				e.Xattrs = map[string]string{}
			}
			e.Xattrs[n] = string(v)
		}
		tree[rel] = e
		return nil
	})
	if err != nil {
		t.Fatalf("stat tree %s: %v", dir, err)
	}
	for _, names := range inodes {
		slices.Sort(names)
		for _, n := range names {
			e := tree[n]
			e.LinkSet = names[0]
			tree[n] = e
		}
	}
	return tree
}

// capNetBindService is a version-2 security.capability value granting
// CAP_NET_BIND_SERVICE (bit 10), effective.
func capNetBindService() []byte {
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b[0:], 0x02000001)
	binary.LittleEndian.PutUint32(b[4:], 1<<10)
	return b
}

// fsOp is one filesystem change the tests make inside a snapshot.
type fsOp func(dir string) error

func apply(dir string, ops ...fsOp) error {
	for _, op := range ops {
		if err := op(dir); err != nil {
			return err
		}
	}
	return nil
}

func file(p, content string, mode os.FileMode) fsOp {
	return func(dir string) error {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, []byte(content), mode); err != nil {
			return err
		}
		return os.Chmod(full, mode)
	}
}

func mkdir(p string, mode os.FileMode) fsOp {
	return func(dir string) error {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(full, mode); err != nil {
			return err
		}
		return os.Chmod(full, mode)
	}
}

func symlink(target, p string) fsOp {
	return func(dir string) error { return os.Symlink(target, filepath.Join(dir, p)) }
}

func hardlink(oldp, newp string) fsOp {
	return func(dir string) error { return os.Link(filepath.Join(dir, oldp), filepath.Join(dir, newp)) }
}

func mknod(p string, mode uint32, major, minor uint32) fsOp {
	return func(dir string) error {
		return unix.Mknod(filepath.Join(dir, p), mode, int(unix.Mkdev(major, minor)))
	}
}

func chown(p string, uid, gid int) fsOp {
	return func(dir string) error { return os.Lchown(filepath.Join(dir, p), uid, gid) }
}

func chmod(p string, mode os.FileMode) fsOp {
	return func(dir string) error { return os.Chmod(filepath.Join(dir, p), mode) }
}

func xattr(p, name string, value []byte) fsOp {
	return func(dir string) error { return unix.Lsetxattr(filepath.Join(dir, p), name, value, 0) }
}

func remove(p string) fsOp {
	return func(dir string) error { return os.RemoveAll(filepath.Join(dir, p)) }
}

func mtime(p string, tm time.Time) fsOp {
	return func(dir string) error {
		ts := []unix.Timespec{unix.NsecToTimespec(tm.UnixNano()), unix.NsecToTimespec(tm.UnixNano())}
		return unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(dir, p), ts, unix.AT_SYMLINK_NOFOLLOW)
	}
}

// touchAll sets the times of every path under dir to tm.
func touchAll(tm time.Time) fsOp {
	return func(dir string) error {
		return filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			return mtime(rel, tm)(dir)
		})
	}
}
