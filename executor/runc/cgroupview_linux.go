package runc

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	goruntime "runtime"

	"golang.org/x/sys/unix"
)

const (
	cgroupRoot    = "/sys/fs/cgroup"
	cgroupUnified = "/sys/fs/cgroup/unified"
)

// hybridWithV2Controllers reports whether this host mounts cgroup v1
// controllers with a v2 hierarchy beside them (at /sys/fs/cgroup/unified)
// that has controllers of its own. crun refuses to run containers there
// ("cgroups in hybrid mode not supported, drop all controllers from
// cgroupv2"); runc copes.
func hybridWithV2Controllers() bool {
	var st unix.Statfs_t
	if unix.Statfs(cgroupRoot, &st) != nil || st.Type != unix.TMPFS_MAGIC {
		return false
	}
	if unix.Statfs(cgroupUnified, &st) != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		return false
	}
	ctrl, err := os.ReadFile(cgroupUnified + "/cgroup.controllers")
	return err == nil && len(bytes.TrimSpace(ctrl)) > 0
}

// startWithoutCgroupV2 starts cmd from an OS thread that has its own mount
// namespace in which the v2 hierarchy of a hybrid host is unmounted, so the
// runtime sees (and uses) only cgroup v1. The child inherits the thread's
// namespace; the rest of the daemon is unaffected. Mounts made on the host
// before the call (the container's rootfs) are visible in the copy.
func startWithoutCgroupV2(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	go func() {
		// The thread is never unlocked: its mount namespace differs from
		// the process's, so the Go runtime must terminate it when this
		// goroutine ends instead of reusing it.
		goruntime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			errc <- fmt.Errorf("unshare mount namespace: %w", err)
			return
		}
		// Slave, so that the unmount below does not propagate to the host.
		if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
			errc <- fmt.Errorf("make mounts private: %w", err)
			return
		}
		if err := unix.Unmount(cgroupUnified, unix.MNT_DETACH); err != nil {
			errc <- fmt.Errorf("hide %s: %w", cgroupUnified, err)
			return
		}
		errc <- cmd.Start()
	}()
	return <-errc
}
