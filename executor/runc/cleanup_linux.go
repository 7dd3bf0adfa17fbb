package runc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Cleanup removes what an earlier daemon left behind after a crash: every
// container in the executor's runtime state directory (killed, then
// deleted), the containers' cgroups, the mounts under <root>/executor and
// the bundles. Call it once
// at start, before the first Run; it must not run concurrently with Run.
func (e *Executor) Cleanup(ctx context.Context) error {
	var errs []error
	ids, err := e.rt.list(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	// A container whose state the runtime cannot list is still a directory.
	if entries, err := os.ReadDir(e.rt.state); err == nil {
		for _, ent := range entries {
			if ent.IsDir() && !slices.Contains(ids, ent.Name()) {
				ids = append(ids, ent.Name())
			}
		}
	}
	for _, id := range ids {
		_, _ = e.rt.output(ctx, "kill", id, "KILL") // may have exited already
		if _, err := e.rt.output(ctx, "delete", "--force", id); err != nil {
			if _, serr := os.Stat(filepath.Join(e.rt.state, id)); serr == nil {
				errs = append(errs, fmt.Errorf("delete leftover container %s: %w", id, err))
			}
		}
	}

	if e.cg != nil {
		if err := e.cg.Cleanup(e.cfg.cgroupParent); err != nil {
			errs = append(errs, err)
		}
	}

	entries, err := os.ReadDir(e.dir)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("read %s: %w", e.dir, err))...)
	}
	for _, ent := range entries {
		if ent.Name() == stateDirName || ent.Name() == idmappedDirName || !ent.IsDir() {
			continue // not bundles; the idmapped view is the whole storage
		}
		if err := cleanupBundle(filepath.Join(e.dir, ent.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// cleanupBundle unmounts and removes one leftover bundle. Only the mounts
// Kiln made at known, trusted paths are unmounted (the rootfs and the
// staging mounts), each with a lazy detach that takes its submounts along:
// a path inside the container filesystem is never handed to umount, since
// a symlink there could point anywhere on the host.
func cleanupBundle(dir string) error {
	var errs []error
	if stage, err := os.ReadDir(filepath.Join(dir, "mnt")); err == nil {
		for _, s := range stage {
			if err := mount.UnmountAll(filepath.Join(dir, "mnt", s.Name()), unix.MNT_DETACH); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := mount.UnmountAll(filepath.Join(dir, "rootfs"), unix.MNT_DETACH); err != nil {
		errs = append(errs, err)
	}
	left, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		errs = append(errs, err)
	} else if len(left) > 0 {
		errs = append(errs, fmt.Errorf("%d mounts remain under %s (first: %s)", len(left), dir, left[0].Mountpoint))
	}
	if len(errs) > 0 {
		return fmt.Errorf("clean up bundle %s: %w", dir, errors.Join(errs...))
	}
	return removeBundle(dir)
}
