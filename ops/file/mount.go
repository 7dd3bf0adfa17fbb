package file

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/containerd/v2/core/mount"
)

// mountDir mounts mounts on a fresh directory under base and returns it
// with the function that unmounts and removes it. A single bind mount is
// not mounted at all: its source directory is used as it is (the native
// snapshotter, and overlay snapshots without a parent).
func mountDir(base string, mounts []mount.Mount) (string, func() error, error) {
	if len(mounts) == 1 && (mounts[0].Type == "bind" || mounts[0].Type == "rbind") {
		return filepath.Clean(mounts[0].Source), func() error { return nil }, nil
	}
	if err := os.MkdirAll(base, 0o700); err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp(base, "kiln-file-")
	if err != nil {
		return "", nil, fmt.Errorf("create mount point: %w", err)
	}
	if err := mount.All(mount.RemoveVolatileOption(mounts), dir); err != nil {
		_ = mount.UnmountMounts(mounts, dir, 0)
		_ = os.Remove(dir)
		return "", nil, fmt.Errorf("mount on %s: %w", dir, err)
	}
	release := func() error {
		err := mount.UnmountMounts(mounts, dir, 0)
		if err != nil {
			// Keep the directory: removing what is still mounted there
			// would be worse than leaking a mount point.
			return fmt.Errorf("unmount %s: %w", dir, err)
		}
		return os.Remove(dir)
	}
	return dir, release, nil
}

// overlayLayout returns the upper and lower directories of a writable
// overlay mount as the fast path needs them: lowers topmost first. It
// declines layouts it cannot write the upper directory of directly
// (userxattr keeps whiteouts in user.* xattrs; id-mapped mounts change
// owners).
func overlayLayout(mounts []mount.Mount, upper string) ([]string, bool) {
	if upper == "" || len(mounts) != 1 {
		return nil, false
	}
	m := mounts[0]
	switch m.Type {
	case "bind", "rbind":
		return nil, filepath.Clean(m.Source) == filepath.Clean(upper)
	case "overlay":
	default:
		return nil, false
	}
	var lowers []string
	up := ""
	for _, opt := range m.Options {
		switch {
		case strings.HasPrefix(opt, "upperdir="):
			up = strings.TrimPrefix(opt, "upperdir=")
		case strings.HasPrefix(opt, "lowerdir="):
			lowers = strings.Split(strings.TrimPrefix(opt, "lowerdir="), ":")
		case opt == "userxattr", strings.HasPrefix(opt, "uidmap="), strings.HasPrefix(opt, "gidmap="), strings.HasPrefix(opt, "X-containerd."):
			return nil, false
		}
	}
	if up == "" || filepath.Clean(up) != filepath.Clean(upper) || len(lowers) == 0 {
		return nil, false
	}
	return lowers, true
}

// joinErr adds err2 to err.
func joinErr(err, err2 error) error {
	if err2 == nil {
		return err
	}
	return errors.Join(err, err2)
}
