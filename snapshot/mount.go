package snapshot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"

	"github.com/kiln-build/kiln/core/errdefs"
)

// WithView mounts a read-only view of the committed snapshot name, calls
// fn with the directory it is mounted on, then unmounts it and removes the
// view, also when fn fails. fn must not keep the directory.
func WithView(ctx context.Context, sn snapshots.Snapshotter, name string, fn func(dir string) error) error {
	return WithViewLayers(ctx, sn, name, func(dir string, _ []string) error { return fn(dir) })
}

// WithViewLayers is WithView that also gives fn the view's layer
// directories, topmost first (ViewLayers; nil when the view is not a
// plain overlay or bind mount).
func WithViewLayers(ctx context.Context, sn snapshots.Snapshotter, name string, fn func(dir string, layers []string) error) (err error) {
	key := tempKey("view")
	mounts, err := sn.View(ctx, key, name)
	if err != nil {
		return fmt.Errorf("view snapshot %s: %w", name, classify(err))
	}
	defer func() {
		if rerr := sn.Remove(context.WithoutCancel(ctx), key); rerr != nil {
			err = errors.Join(err, fmt.Errorf("remove view of %s: %w", name, classify(rerr)))
		}
	}()
	layers := ViewLayers(mounts)
	return withMounts(mountRootOf(sn), mounts, func(dir string) error { return fn(dir, layers) })
}

// WithActive mounts the active snapshot key, calls fn with the directory
// it is mounted on, then unmounts it, also when fn fails. Changes made
// through the directory stay in the snapshot.
func WithActive(ctx context.Context, sn snapshots.Snapshotter, key string, fn func(dir string) error) error {
	mounts, err := sn.Mounts(ctx, key)
	if err != nil {
		return fmt.Errorf("mounts of snapshot %s: %w", key, classify(err))
	}
	return withMounts(mountRootOf(sn), mounts, fn)
}

// withMounts mounts mounts on a fresh directory under root for fn. A
// deferred unmount runs even if fn panics.
func withMounts(root string, mounts []mount.Mount, fn func(dir string) error) (err error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return err
	}
	dir, err := os.MkdirTemp(root, "m-")
	if err != nil {
		return fmt.Errorf("create mount point: %w", err)
	}
	defer func() {
		// Remove, not RemoveAll: after a failed unmount RemoveAll would
		// delete snapshot data through the mount point.
		if rerr := os.Remove(dir); rerr != nil {
			err = errors.Join(err, fmt.Errorf("remove mount point: %w", rerr))
		}
	}()
	if err := mount.All(mounts, dir); err != nil {
		_ = mount.UnmountMounts(mounts, dir, 0)
		return fmt.Errorf("mount snapshot on %s: %w", dir, err)
	}
	defer func() {
		if uerr := mount.UnmountMounts(mounts, dir, 0); uerr != nil {
			err = errors.Join(err, fmt.Errorf("unmount %s: %w", dir, uerr))
		}
	}()
	return fn(dir)
}

// mountRootOf is where to put mount points for sn: under its own root for
// a Snapshotter from New, else in the system temporary directory.
func mountRootOf(sn snapshots.Snapshotter) string {
	if m, ok := sn.(interface{ mountRoot() string }); ok {
		return m.mountRoot()
	}
	return os.TempDir()
}

// tempKey returns a fresh key for a short-lived snapshot of this package.
func tempKey(purpose string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return tempPrefix + purpose + "-" + hex.EncodeToString(b[:])
}

// DiskUsage sums the usage of every snapshot in sn: the space and inodes
// all layers take on disk (each snapshot counts only its own changes on
// overlayfs; on native each holds a full copy).
func DiskUsage(ctx context.Context, sn snapshots.Snapshotter) (snapshots.Usage, error) {
	// Collect first: Usage inside Walk would nest two bolt transactions in
	// one goroutine, which can deadlock against a writer.
	var names []string
	err := sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		names = append(names, info.Name)
		return nil
	})
	if err != nil {
		return snapshots.Usage{}, fmt.Errorf("snapshot usage: %w", classify(err))
	}
	var total snapshots.Usage
	for _, name := range names {
		u, err := sn.Usage(ctx, name)
		if errdefs.IsNotFound(classify(err)) {
			continue // removed since the walk
		}
		if err != nil {
			return snapshots.Usage{}, fmt.Errorf("usage of snapshot %s: %w", name, classify(err))
		}
		total.Add(u)
	}
	return total, nil
}
