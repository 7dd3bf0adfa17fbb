package runc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"syscall"

	"github.com/containerd/containerd/v2/core/mount"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/core/errdefs"
)

// IDMap maps Size ids from ContainerID in the container to HostID on the
// host ([rootless] uid-map = "0:100000:65536").
type IDMap = specs.LinuxIDMapping

// WithUserNamespace runs every process in a user namespace with these
// maps: root in the container is an unprivileged user on the host.
// Files keep the ids the container sees on disk, so layers and diffs do
// not change: the executor reaches the daemon's storage through an
// idmapped view of it (mount_setattr(2), Linux 5.12; overlayfs on
// idmapped layers needs 5.19).
func WithUserNamespace(uids, gids []IDMap) Option {
	return func(c *config) { c.uids, c.gids = uids, gids }
}

// userns is what the executor keeps for WithUserNamespace.
type userns struct {
	uids, gids []IDMap
	rootUID    uint32 // the host ids of the container's root
	rootGID    uint32
	ns         *os.File // a user namespace with the maps, for idmapped mounts
	store      string   // the daemon's root
	view       string   // an idmapped view of store
}

// hostID maps a container id to the host, or reports it unmapped.
func hostID(maps []IDMap, id uint32) (uint32, bool) {
	for _, m := range maps {
		if id >= m.ContainerID && id-m.ContainerID < m.Size {
			return m.HostID + (id - m.ContainerID), true
		}
	}
	return 0, false
}

// newUserns creates the user namespace and mounts the idmapped view of
// store at view.
func newUserns(store, view string, uids, gids []IDMap) (*userns, error) {
	rootUID, ok1 := hostID(uids, 0)
	rootGID, ok2 := hostID(gids, 0)
	if !ok1 || !ok2 {
		return nil, errdefs.Invalidf("user namespace: the uid and gid maps must map the container's root (0)")
	}
	if err := checkKernel(5, 19); err != nil {
		return nil, err
	}
	if err := checkTraversable(store, rootUID); err != nil {
		return nil, err
	}
	ns, err := userNamespace(uids, gids)
	if err != nil {
		return nil, err
	}
	u := &userns{uids: uids, gids: gids, rootUID: rootUID, rootGID: rootGID, ns: ns, store: store, view: view}
	// Views left by a daemon that was killed go first (a view is never
	// removed with its contents: they are the daemon's storage).
	for unix.Unmount(view, unix.MNT_DETACH) == nil {
	}
	if err := os.MkdirAll(view, 0o700); err != nil {
		ns.Close()
		return nil, err
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, store, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("user namespace: clone %s: %w", store, err)
	}
	tree := os.NewFile(uintptr(fd), "idmapped:"+store)
	defer tree.Close()
	if err := u.idmap(fd); err != nil {
		ns.Close()
		return nil, err
	}
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, view, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		ns.Close()
		return nil, fmt.Errorf("user namespace: mount the idmapped view of %s: %w", store, err)
	}
	return u, nil
}

// ErrUserNamespaceKernel is the class of the error New returns when the
// kernel is too old for WithUserNamespace.
var ErrUserNamespaceKernel = errors.New("kernel too old for RUN steps in a user namespace")

// checkKernel makes sure the kernel is at least major.minor: overlayfs
// over idmapped layers came in Linux 5.19.
func checkKernel(major, minor int) error {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return err
	}
	rel := unix.ByteSliceToString(u.Release[:])
	var ma, mi int
	if _, err := fmt.Sscanf(rel, "%d.%d", &ma, &mi); err != nil {
		return fmt.Errorf("kernel release %q: %w", rel, err)
	}
	if ma < major || ma == major && mi < minor {
		return errdefs.WithClass(errdefs.ErrFailedPrecondition, fmt.Errorf(
			"%w: it needs Linux %d.%d (overlayfs over idmapped layers), this is %s", ErrUserNamespaceKernel, major, minor, rel))
	}
	return nil
}

// checkTraversable makes sure the container's root, an unprivileged user on
// the host, can pass through every directory down to the daemon's storage
// (its rootfs is in there), or says which one stops it.
func checkTraversable(dir string, uid uint32) error {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if ok && fi.Mode().Perm()&0o001 == 0 && st.Uid != uid {
			return errdefs.WithClass(errdefs.ErrFailedPrecondition, fmt.Errorf(
				"user namespace: %s (mode %o) stops the container's root (host uid %d) on its way to %s: make it traversable (chmod o+x %s)",
				d, fi.Mode().Perm(), uid, dir, d))
		}
		if d == "/" || d == "." {
			return nil
		}
	}
}

// userNamespace returns a user namespace with the maps, held by its file:
// a process is started in a new one, which is then all the namespace needs.
func userNamespace(uids, gids []IDMap) (*os.File, error) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		return nil, errdefs.WithClass(errdefs.ErrFailedPrecondition, fmt.Errorf("user namespace: %w", err))
	}
	cmd := exec.Command(sleep, "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: procMaps(uids),
		GidMappings: procMaps(gids),
		Pdeathsig:   syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("user namespace: %w", err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", cmd.Process.Pid))
	if err != nil {
		return nil, fmt.Errorf("user namespace: %w", err)
	}
	return f, nil
}

func procMaps(maps []IDMap) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, len(maps))
	for i, m := range maps {
		out[i] = syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)}
	}
	return out
}

// idmap makes the detached mount fd show files through the maps.
func (u *userns) idmap(fd int) error {
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(u.ns.Fd())}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
		return fmt.Errorf("idmap mount (needs Linux 5.12 and a file system that supports it): %w", err)
	}
	return nil
}

// close releases the view and the namespace.
func (u *userns) close() error {
	err := unix.Unmount(u.view, unix.MNT_DETACH)
	if err == nil {
		// Never RemoveAll: were the view still mounted, that would empty
		// the daemon's storage.
		err = errors.Join(os.Remove(u.view), os.Remove(filepath.Dir(u.view)))
	}
	return errors.Join(err, u.ns.Close())
}

// viewOf rewrites the overlay layers and bind sources of m that are in
// the daemon's storage to their idmapped view.
func (u *userns) viewOf(m mount.Mount) mount.Mount {
	under := func(p string) string {
		if rel, err := filepath.Rel(u.store, p); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
			return filepath.Join(u.view, rel)
		}
		return p
	}
	out := m
	if m.Type == "bind" || m.Type == "rbind" {
		out.Source = under(m.Source)
		return out
	}
	if m.Type != "overlay" {
		return out
	}
	out.Options = make([]string, len(m.Options))
	for i, o := range m.Options {
		k, v, ok := strings.Cut(o, "=")
		switch {
		case ok && k == "lowerdir":
			dirs := strings.Split(v, ":")
			for j := range dirs {
				dirs[j] = under(dirs[j])
			}
			o = k + "=" + strings.Join(dirs, ":")
		case ok && (k == "upperdir" || k == "workdir"):
			o = k + "=" + under(v)
		}
		out.Options[i] = o
	}
	return out
}

// isOverlay reports whether any of ms is an overlay (it cannot be
// idmapped itself: it is built over idmapped layers instead).
func isOverlay(ms []mount.Mount) bool {
	for _, m := range ms {
		if m.Type == "overlay" {
			return true
		}
	}
	return false
}

// asContainerRoot runs fn on a thread whose file system ids are the
// container root's host ids, keeping the daemon's capabilities. Files fn
// creates through the idmapped view are owned by the container's root on
// disk, and an overlay fn mounts over idmapped layers copies files up
// with those ids (overlayfs works with its mounter's credentials; host
// root is not in the maps, so its writes would fail with EOVERFLOW).
func (u *userns) asContainerRoot(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		// These calls change this thread only (the raw syscalls are not
		// broadcast to every thread as syscall.Setfsuid's may be).
		unix.RawSyscall(unix.SYS_SETFSGID, uintptr(u.rootGID), 0, 0)
		unix.RawSyscall(unix.SYS_SETFSUID, uintptr(u.rootUID), 0, 0)
		ok := u.keepCapabilities() == nil
		var err error
		if ok {
			err = fn()
		} else {
			err = errors.New("user namespace: cannot keep capabilities while acting as the container's root")
		}
		unix.RawSyscall(unix.SYS_SETFSUID, 0, 0, 0)
		unix.RawSyscall(unix.SYS_SETFSGID, 0, 0, 0)
		if uid, _, _ := unix.RawSyscall(unix.SYS_SETFSUID, ^uintptr(0), 0, 0); uid == 0 {
			goruntime.UnlockOSThread()
		} // else the thread ends with this goroutine, locked
		errc <- err
	}()
	return <-errc
}

// keepCapabilities raises the effective capabilities again: changing the
// file system uid from 0 drops the file capabilities (capabilities(7)).
func (u *userns) keepCapabilities() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return err
	}
	data[0].Effective, data[1].Effective = data[0].Permitted, data[1].Permitted
	return unix.Capset(&hdr, &data[0])
}
