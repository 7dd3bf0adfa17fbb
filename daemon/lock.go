package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/core/errdefs"
)

// LockFile is the name of the lock file in the root directory.
const LockFile = "kilnd.lock"

// RootLock is an exclusive lock on a root directory, held by one kilnd.
type RootLock struct {
	f    *os.File
	root string
}

// LockRoot creates root (mode 0711) if needed and takes an exclusive flock
// on root/kilnd.lock, writing this process's pid into it. When another
// process holds the lock it fails at once with an error in the
// errdefs.ErrFailedPrecondition class naming the holder's pid:
//
//	another kilnd (pid 1234) is using root /var/lib/kiln
//
// The lock is released by Release or when the process exits.
func LockRoot(root string) (*RootLock, error) {
	if err := os.MkdirAll(root, 0o711); err != nil {
		return nil, fmt.Errorf("create root %s: %w", root, err)
	}
	path := filepath.Join(root, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, errdefs.WithClass(errdefs.ErrFailedPrecondition,
				fmt.Errorf("another kilnd (%s) is using root %s", holder(f), root))
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, fmt.Errorf("write lock file: %w", err)
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("write lock file: %w", err)
	}
	return &RootLock{f: f, root: root}, nil
}

// holder describes the process named in a lock file.
func holder(f *os.File) string {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	pid := strings.TrimSpace(string(b[:n]))
	if _, err := strconv.Atoi(pid); err != nil || pid == "" {
		return "pid unknown"
	}
	return "pid " + pid
}

// Root returns the locked directory.
func (l *RootLock) Root() string { return l.root }

// Release empties the lock file and releases the lock.
func (l *RootLock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = l.f.Truncate(0)
	// Unlock before closing: a child forked at this moment (runc, a test
	// binary) holds a copy of the descriptor until it execs, and a flock
	// lives until every copy is closed, unless it is unlocked explicitly.
	uerr := unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	err := l.f.Close()
	l.f = nil
	return errors.Join(uerr, err)
}
