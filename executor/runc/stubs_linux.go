package runc

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// A stub is a file or directory created inside the root filesystem (or an
// extra mount) only to serve as a mount point. Stubs are removed after the
// process, when still empty, so that they do not end up in the snapshot;
// the parent's times are restored so that the parent does not look changed
// either.
type stub struct {
	path        string // absolute path in the container, as it was created
	dir         bool
	parentTimes *[2]unix.Timespec // the parent's atime and mtime before; set on the topmost stub of a chain
}

// openInRoot opens p inside root as an O_PATH handle, resolving symlinks as
// if root were "/" (a symlink can never lead out of root).
func openInRoot(root *os.File, p string) (*os.File, error) {
	return pathrs.OpenatInRoot(root, p)
}

// ensureDir returns an O_PATH handle of the directory p inside root,
// creating what is missing, and the stubs it created (outermost first).
func ensureDir(root *os.File, p string) (*os.File, []stub, error) {
	p = cleanAbs(p)
	h, err := openInRoot(root, p)
	if err == nil {
		if !isDir(h) {
			h.Close()
			return nil, nil, fmt.Errorf("%s: %w", p, unix.ENOTDIR)
		}
		return h, nil, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	comps := strings.Split(strings.TrimPrefix(p, "/"), "/")
	// Find the deepest existing ancestor; "/" always exists.
	n := len(comps) - 1
	var parent *os.File
	for ; n >= 0; n-- {
		ph, err := openInRoot(root, "/"+strings.Join(comps[:n], "/"))
		if err == nil {
			parent = ph
			break
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, nil, err
		}
	}
	if parent == nil {
		return nil, nil, fmt.Errorf("%s: root filesystem is gone", p)
	}
	times, err := handleTimes(parent)
	parent.Close()
	if err != nil {
		return nil, nil, err
	}
	var stubs []stub
	for j := n; j < len(comps); j++ {
		sub := "/" + strings.Join(comps[:j+1], "/")
		// MkdirAllHandle creates inside root only; a dangling symlink on
		// the way has its target created, also inside root.
		dh, err := pathrs.MkdirAllHandle(root, sub, 0o755)
		if err != nil {
			return nil, stubs, err
		}
		st := stub{path: sub, dir: true}
		if j == n {
			st.parentTimes = &times
		}
		stubs = append(stubs, st)
		if j == len(comps)-1 {
			return dh, stubs, nil
		}
		dh.Close()
	}
	return nil, stubs, fmt.Errorf("%s: empty path", p)
}

// ensureFile returns an O_PATH handle of the non-directory p inside root,
// creating an empty file (and missing parents) when it does not exist.
func ensureFile(root *os.File, p string) (*os.File, []stub, error) {
	p = cleanAbs(p)
	h, err := openInRoot(root, p)
	if err == nil {
		if isDir(h) {
			h.Close()
			return nil, nil, fmt.Errorf("%s: %w", p, unix.EISDIR)
		}
		return h, nil, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	dir, base := path.Split(p)
	ph, stubs, err := ensureDir(root, dir)
	if err != nil {
		return nil, stubs, err
	}
	defer ph.Close()
	var parentTimes *[2]unix.Timespec
	if len(stubs) == 0 {
		t, err := handleTimes(ph)
		if err != nil {
			return nil, stubs, err
		}
		parentTimes = &t
	}
	fd, err := unix.Openat(int(ph.Fd()), base, unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		if errors.Is(err, unix.EEXIST) {
			return nil, stubs, fmt.Errorf("%s is a symlink to a missing file", p)
		}
		return nil, stubs, fmt.Errorf("create %s: %w", p, err)
	}
	unix.Close(fd)
	stubs = append(stubs, stub{path: p, parentTimes: parentTimes})
	fd, err = unix.Openat(int(ph.Fd()), base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, stubs, fmt.Errorf("open %s: %w", p, err)
	}
	return os.NewFile(uintptr(fd), p), stubs, nil
}

// removeStubs removes stubs in reverse order of creation, each only if it is
// still an empty directory or an empty regular file.
func removeStubs(root *os.File, stubs []stub) []error {
	var errs []error
	for i := len(stubs) - 1; i >= 0; i-- {
		if err := removeStub(root, stubs[i]); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

func removeStub(root *os.File, st stub) error {
	dir, base := path.Split(st.path)
	ph, err := openInRoot(root, dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("remove mount point %s: %w", st.path, err)
	}
	defer ph.Close()
	pfd := int(ph.Fd())
	if st.dir {
		err = unix.Unlinkat(pfd, base, unix.AT_REMOVEDIR)
	} else {
		var sb unix.Stat_t
		if err := unix.Fstatat(pfd, base, &sb, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) {
				return nil
			}
			return fmt.Errorf("remove mount point %s: %w", st.path, err)
		}
		if sb.Mode&unix.S_IFMT != unix.S_IFREG || sb.Size != 0 {
			return nil // the process put something there; keep it
		}
		err = unix.Unlinkat(pfd, base, 0)
	}
	switch {
	case err == nil:
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTEMPTY), errors.Is(err, unix.EEXIST), errors.Is(err, unix.ENOTDIR):
		return nil // gone already, or used by the process: keep it
	default:
		return fmt.Errorf("remove mount point %s: %w", st.path, err)
	}
	if st.parentTimes != nil {
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, fdPath(ph), st.parentTimes[:], 0); err != nil {
			return fmt.Errorf("restore times of %s: %w", dir, err)
		}
	}
	return nil
}

func isDir(h *os.File) bool {
	var st unix.Stat_t
	return unix.Fstat(int(h.Fd()), &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR
}

func handleTimes(h *os.File) ([2]unix.Timespec, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(h.Fd()), &st); err != nil {
		return [2]unix.Timespec{}, fmt.Errorf("stat %s: %w", h.Name(), err)
	}
	return [2]unix.Timespec{st.Atim, st.Mtim}, nil
}
