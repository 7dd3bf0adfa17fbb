package runc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/core/mount"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/executor"
)

// runtimeManaged are the directories the runtime mounts over (tmpfs /dev,
// proc, sysfs). A mount below them must be made by the runtime, after its
// own mounts, or it would be hidden.
var runtimeManaged = []string{"/dev", "/proc", "/sys"}

// mountSet is everything one Run mounted and created on the host, so that
// release can undo it in reverse order.
type mountSet struct {
	b           *bundle
	userns      *userns // processes run in a user namespace
	rootMounted bool
	root        *os.File // O_PATH handle of the mounted rootfs
	rootStubs   []stub   // mount points for the runtime's own mounts
	attached    []*attachedMount
	staged      []string // staging paths still mounted (runtime-managed destinations)
}

// attachedMount is one extra mount attached inside the rootfs.
type attachedMount struct {
	dest  string
	tree  *os.File // the mount's root, from open_tree(2); detaching it unmounts it
	stubs []stub   // mount points created for it
}

func newMountSet(b *bundle) *mountSet { return &mountSet{b: b} }

// mountRoot mounts the root filesystem at the bundle's rootfs and creates
// the mount points the runtime needs (/proc, /dev, /sys) when missing.
func (s *mountSet) mountRoot(root executor.Mount) error {
	// Set first: with several sources, an error may come after some of
	// them are mounted (unmounting an unmounted rootfs is a no-op).
	s.rootMounted = true
	if err := mount.All(s.viewOf(root.Source, true), s.b.rootfs()); err != nil {
		return fmt.Errorf("mount root filesystem: %w", err)
	}
	// The root's own read-only flag is applied by the runtime (root.readonly
	// in the spec), after every mount point exists.
	h, err := os.OpenFile(s.b.rootfs(), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open root filesystem: %w", err)
	}
	s.root = h
	for _, d := range runtimeManaged {
		dh, stubs, err := ensureDir(s.root, d)
		s.rootStubs = append(s.rootStubs, stubs...)
		if err != nil {
			return fmt.Errorf("create mount point %s: %w", d, err)
		}
		dh.Close()
	}
	return nil
}

// setup attaches mounts, parents before children (a stable sort by depth
// keeps the caller's order for equal destinations, so a later one covers an
// earlier one). It returns the mounts the runtime must make itself.
func (s *mountSet) setup(mounts []executor.Mount) ([]specs.Mount, error) {
	sorted := append([]executor.Mount(nil), mounts...)
	sort.SliceStable(sorted, func(i, j int) bool {
		return depth(sorted[i].Dest) < depth(sorted[j].Dest)
	})
	if err := os.Mkdir(s.b.stagingDir(), 0o700); err != nil {
		return nil, fmt.Errorf("create staging directory: %w", err)
	}
	var forRuntime []specs.Mount
	for i, m := range sorted {
		dest := cleanAbs(m.Dest)
		staging := filepath.Join(s.b.stagingDir(), strconv.Itoa(i))
		isDir, err := sourceIsDir(m)
		if err != nil {
			return nil, fmt.Errorf("mount %s: %w", dest, err)
		}
		if err := s.stage(m, staging, isDir); err != nil {
			return nil, fmt.Errorf("mount %s: %w", dest, err)
		}
		if underRuntimeManaged(dest) {
			opts := []string{"rbind", "rw"}
			if m.Readonly {
				opts = []string{"rbind", "ro"}
			}
			forRuntime = append(forRuntime, specs.Mount{Destination: dest, Type: "bind", Source: staging, Options: opts})
			continue
		}
		err = s.attach(dest, staging, isDir, m.Readonly, s.userns != nil && !isOverlay(m.Source))
		// The attached clone stays; the staging mount goes now (release
		// retries it if this fails).
		if uerr := mount.UnmountAll(staging, unix.MNT_DETACH); uerr != nil {
			err = errors.Join(err, fmt.Errorf("unmount staging directory: %w", uerr))
		} else {
			s.staged = s.staged[:len(s.staged)-1]
		}
		if err != nil {
			return nil, fmt.Errorf("mount %s: %w", dest, err)
		}
	}
	return forRuntime, nil
}

// stage mounts m's sources at a fresh staging path of the right kind.
func (s *mountSet) stage(m executor.Mount, staging string, isDir bool) error {
	if isDir {
		if err := os.Mkdir(staging, 0o755); err != nil {
			return err
		}
	} else {
		f, err := os.OpenFile(staging, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		f.Close()
	}
	s.staged = append(s.staged, staging)
	// A read-only mount is staged as given and made read-only on the
	// clone (attach) or by the runtime's bind (runtime-managed paths).
	return mount.All(s.viewOf(m.Source, false), staging)
}

// viewOf returns ms as mounted for a user namespace: overlays over the
// idmapped view of the daemon's storage; binds too when binds is set (the
// rootfs, which is not attached); other binds are idmapped when attached.
func (s *mountSet) viewOf(ms []mount.Mount, binds bool) []mount.Mount {
	if s.userns == nil {
		return ms
	}
	out := make([]mount.Mount, len(ms))
	for i, m := range ms {
		if m.Type == "overlay" || binds {
			m = s.userns.viewOf(m)
		}
		out[i] = m
	}
	return out
}

// attach moves a clone of the staged mount onto its mount point in the
// rootfs, creating the mount point if needed.
func (s *mountSet) attach(dest, staging string, isDir, readonly, idmap bool) error {
	fd, err := unix.OpenTree(unix.AT_FDCWD, staging, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil {
		return fmt.Errorf("clone mount (open_tree needs Linux 5.2): %w", err)
	}
	tree := os.NewFile(uintptr(fd), "mount:"+dest)
	if idmap {
		if err := s.userns.idmap(fd); err != nil {
			tree.Close()
			return err
		}
	}
	if readonly {
		attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
		if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
			tree.Close()
			return fmt.Errorf("make mount read-only (mount_setattr needs Linux 5.12): %w", err)
		}
	}
	var (
		mp    *os.File
		stubs []stub
	)
	if isDir {
		mp, stubs, err = ensureDir(s.root, dest)
	} else {
		mp, stubs, err = ensureFile(s.root, dest)
	}
	am := &attachedMount{dest: dest, stubs: stubs}
	s.attached = append(s.attached, am)
	if err != nil {
		tree.Close()
		return mountPointError(err)
	}
	defer mp.Close()
	if err := unix.MoveMount(fd, "", int(mp.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		tree.Close()
		return fmt.Errorf("attach mount: %w", err)
	}
	am.tree = tree
	return nil
}

// mountPointError explains the usual reasons a mount point cannot be made.
func mountPointError(err error) error {
	switch {
	case errors.Is(err, unix.EROFS):
		return errdefs.Invalidf("cannot create the mount point: it is inside a read-only mount (%v)", err)
	case errors.Is(err, unix.ENOTDIR):
		return errdefs.Invalidf("the destination or one of its parents is not a directory, or is a symlink to a missing one (%v)", err)
	case errors.Is(err, unix.EISDIR):
		return errdefs.Invalidf("cannot mount a file on a directory (%v)", err)
	}
	return fmt.Errorf("create mount point: %w", err)
}

// ensureWorkdir creates the working directory when missing, owned by the
// process's user. It stays in the root filesystem, like Docker's WORKDIR.
func (s *mountSet) ensureWorkdir(cwd string, uid, gid uint32) error {
	h, created, err := ensureDir(s.root, cleanAbs(cwd))
	if err != nil {
		if errors.Is(err, unix.EROFS) {
			return errdefs.Invalidf("cannot create working directory %s: it is inside a read-only mount", cwd)
		}
		return fmt.Errorf("create working directory %s: %w", cwd, err)
	}
	defer h.Close()
	for _, c := range created {
		ch, err := openInRoot(s.root, c.path)
		if err != nil {
			return fmt.Errorf("create working directory %s: %w", cwd, err)
		}
		huid, hgid := uid, gid
		if s.userns != nil {
			var ok1, ok2 bool
			huid, ok1 = hostID(s.userns.uids, uid)
			hgid, ok2 = hostID(s.userns.gids, gid)
			if !ok1 || !ok2 {
				ch.Close()
				return errdefs.Invalidf("working directory %s: user %d:%d is outside the user namespace's maps", cwd, uid, gid)
			}
		}
		err = unix.Fchownat(int(ch.Fd()), "", int(huid), int(hgid), unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW)
		ch.Close()
		if err != nil {
			return fmt.Errorf("chown working directory %s: %w", c.path, err)
		}
	}
	return nil
}

// release undoes everything in reverse order: extra mounts are detached and
// their mount points removed, then the runtime's mount points, then the
// rootfs is unmounted. It goes on after errors and reports them all; it
// returns an error only if something may still be mounted (then the bundle
// must not be removed).
func (s *mountSet) release() error {
	var errs, mountErrs []error
	for i := len(s.attached) - 1; i >= 0; i-- {
		am := s.attached[i]
		if am.tree != nil {
			// The tree fd is the mount's root: unmounting through its magic
			// link detaches exactly this mount, whatever happened to the
			// path inside the container.
			if err := unix.Unmount(fdPath(am.tree), unix.MNT_DETACH); err != nil {
				mountErrs = append(mountErrs, fmt.Errorf("unmount %s: %w", am.dest, err))
			}
			am.tree.Close()
		}
		errs = append(errs, removeStubs(s.root, am.stubs)...)
	}
	for _, p := range s.staged {
		if err := mount.UnmountAll(p, unix.MNT_DETACH); err != nil {
			mountErrs = append(mountErrs, fmt.Errorf("unmount %s: %w", p, err))
		}
	}
	if s.root != nil {
		errs = append(errs, removeStubs(s.root, s.rootStubs)...)
		s.root.Close()
	}
	if s.rootMounted {
		if err := unmountRootfs(s.b.rootfs()); err != nil {
			mountErrs = append(mountErrs, err)
		}
	}
	if len(mountErrs) > 0 {
		return errors.Join(append(mountErrs, errs...)...)
	}
	if len(errs) > 0 {
		// Leftover stubs are harmless to the host; report but allow the
		// bundle to go.
		return &stubError{errors.Join(errs...)}
	}
	return nil
}

// stubError reports mount points that could not be removed; nothing is
// mounted any more when it is returned.
type stubError struct{ err error }

func (e *stubError) Error() string { return "remove mount points: " + e.err.Error() }
func (e *stubError) Unwrap() error { return e.err }

// unmountRootfs unmounts the rootfs and everything still below it. A plain
// unmount is tried first so that the snapshot is released when this
// returns; a lazy detach (which takes every submount with it) is the
// fallback.
func unmountRootfs(rootfs string) error {
	for range 3 {
		err := unix.Unmount(rootfs, 0)
		if err == nil {
			continue // stacked mounts: go on until EINVAL
		}
		if errors.Is(err, unix.EINVAL) {
			return nil
		}
		break
	}
	if err := unix.Unmount(rootfs, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("unmount rootfs: %w", err)
	}
	return mount.UnmountAll(rootfs, unix.MNT_DETACH)
}

// sourceIsDir reports whether m mounts a directory (false for a bind of a
// single file or socket).
func sourceIsDir(m executor.Mount) (bool, error) {
	for _, src := range m.Source {
		if !isBind(src) {
			continue
		}
		fi, err := os.Stat(src.Source)
		if err != nil {
			return false, fmt.Errorf("bind source: %w", err)
		}
		return fi.IsDir(), nil
	}
	return true, nil
}

func isBind(m mount.Mount) bool {
	if m.Type == "bind" || m.Type == "rbind" {
		return true
	}
	for _, o := range m.Options {
		if o == "bind" || o == "rbind" {
			return true
		}
	}
	return false
}

func underRuntimeManaged(dest string) bool {
	for _, d := range runtimeManaged {
		if dest == d || strings.HasPrefix(dest, d+"/") {
			return true
		}
	}
	return false
}

func depth(p string) int {
	p = cleanAbs(p)
	if p == "/" {
		return 0
	}
	return strings.Count(p, "/")
}

func fdPath(f *os.File) string {
	return "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
}
