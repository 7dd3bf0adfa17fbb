package snapshot

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/plugins/snapshots/native"
	"github.com/containerd/containerd/v2/plugins/snapshots/overlay"

	"github.com/kiln-build/kiln/core/errdefs"
)

// Snapshotter kinds accepted by New (the worker's `snapshotter` setting).
const (
	KindAuto    = "auto"      // overlayfs if it mounts under root, else native
	KindOverlay = "overlayfs" // containerd's overlay snapshotter
	KindNative  = "native"    // containerd's copying snapshotter
)

// upperdirLabel is the label containerd's overlay snapshotter sets, when
// asked to, to the upper directory of a snapshot. Snapshotter reads it for
// UpperDir and hides it from callers.
const upperdirLabel = "containerd.io/snapshot/overlay.upperdir"

// tempPrefix starts the keys of the snapshots this package creates for its
// own short-lived use; New removes any a crash left behind.
const tempPrefix = "kiln-tmp-"

// Snapshotter is a containerd snapshotter (overlayfs or native) as Kiln
// uses it: errors carry core/errdefs classes as well as containerd's, and
// it knows where to mount snapshots for WithView and WithActive.
type Snapshotter struct {
	sn       snapshots.Snapshotter
	kind     string
	mountDir string
}

var _ snapshots.Snapshotter = (*Snapshotter)(nil)

// UpperDirer is implemented by snapshotters that keep each snapshot's own
// changes in one directory (overlayfs). Diff uses it to read only those
// changes instead of comparing two whole trees.
type UpperDirer interface {
	// UpperDir returns the directory holding the changes the snapshot key
	// (active or committed) made on top of its parent. For an active
	// snapshot the directory changes while the snapshot is in use.
	UpperDir(ctx context.Context, key string) (string, error)
}

var _ UpperDirer = (*Snapshotter)(nil)

// New opens the snapshotter of the given kind under <root>/snapshots: its
// data in <root>/snapshots/<kind>, its temporary mount points in
// <root>/snapshots/mnt. kind is KindAuto, KindOverlay or KindNative; auto
// probes by mounting a small overlay under root and falls back to native.
//
// New also finishes what a crashed process left: it unmounts and removes
// stale mount points, removes the temporary snapshots of this package and
// frees the space of removed snapshots. One process should hold one
// Snapshotter per root.
func New(root, kind string) (*Snapshotter, error) {
	if root == "" {
		return nil, errdefs.Invalidf("snapshotter: empty root directory")
	}
	base := filepath.Join(root, "snapshots")
	if err := os.MkdirAll(base, 0o700); err != nil {
		return nil, fmt.Errorf("snapshotter: %w", err)
	}
	mountDir := filepath.Join(base, "mnt")
	if err := cleanMountDir(mountDir); err != nil {
		return nil, fmt.Errorf("snapshotter: clean stale mounts: %w", err)
	}

	switch kind {
	case KindAuto:
		kind = KindNative
		if err := probeOverlay(base); err == nil {
			kind = KindOverlay
		}
	case KindOverlay:
		if err := probeOverlay(base); err != nil {
			return nil, errdefs.WithClass(errdefs.ErrFailedPrecondition,
				fmt.Errorf("snapshotter overlayfs: overlay does not mount under %s (use snapshotter \"native\" or \"auto\"): %w", base, err))
		}
	case KindNative:
	default:
		return nil, errdefs.Invalidf("snapshotter %q: unknown kind (want %q, %q or %q)", kind, KindAuto, KindOverlay, KindNative)
	}

	dir := filepath.Join(base, kind)
	var (
		sn  snapshots.Snapshotter
		err error
	)
	if kind == KindOverlay {
		sn, err = overlay.NewSnapshotter(dir, overlay.WithUpperdirLabel, overlay.WithMountOptions(overlayMountOptions()))
	} else {
		sn, err = native.NewSnapshotter(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("snapshotter %s under %s: %w", kind, dir, classify(err))
	}
	s := &Snapshotter{sn: sn, kind: kind, mountDir: mountDir}
	if err := s.removeTemp(context.Background()); err != nil {
		_ = sn.Close()
		return nil, err
	}
	return s, nil
}

// overlayMountOptions turns off the overlayfs features that move data out
// of the upper directory (renamed directories as redirects, metadata-only
// copy-up), where the kernel has them: Diff reads a snapshot's changes
// from its upper directory alone.
func overlayMountOptions() []string {
	var opts []string
	for _, feature := range []string{"redirect_dir", "metacopy"} {
		if _, err := os.Stat(filepath.Join("/sys/module/overlay/parameters", feature)); err == nil {
			opts = append(opts, feature+"=off")
		}
	}
	return opts
}

// Kind returns the kind in use: KindOverlay or KindNative.
func (s *Snapshotter) Kind() string { return s.kind }

// UpperDir implements UpperDirer for the overlayfs kind; for native it
// returns an error in the unimplemented class.
func (s *Snapshotter) UpperDir(ctx context.Context, key string) (string, error) {
	if s.kind != KindOverlay {
		return "", errdefs.WithClass(errdefs.ErrUnimplemented, fmt.Errorf("snapshot %s: the %s snapshotter has no upper directories", key, s.kind))
	}
	info, err := s.sn.Stat(ctx, key)
	if err != nil {
		return "", fmt.Errorf("snapshot %s: %w", key, classify(err))
	}
	dir := info.Labels[upperdirLabel]
	if dir == "" {
		return "", errdefs.WithClass(errdefs.ErrInternal, fmt.Errorf("snapshot %s: overlay snapshotter gave no upper directory", key))
	}
	return dir, nil
}

func hideLabels(info snapshots.Info) snapshots.Info {
	if _, ok := info.Labels[upperdirLabel]; ok {
		labels := make(map[string]string, len(info.Labels)-1)
		for k, v := range info.Labels {
			if k != upperdirLabel {
				labels[k] = v
			}
		}
		info.Labels = labels
	}
	return info
}

// Stat returns the info of the snapshot key (active, view or committed).
func (s *Snapshotter) Stat(ctx context.Context, key string) (snapshots.Info, error) {
	info, err := s.sn.Stat(ctx, key)
	return hideLabels(info), classify(err)
}

// Update updates the labels of a snapshot.
func (s *Snapshotter) Update(ctx context.Context, info snapshots.Info, fieldpaths ...string) (snapshots.Info, error) {
	// containerd's overlay adds its upperdir label to the map it is given:
	// hand it a copy so the caller's map stays as it was.
	info.Labels = maps.Clone(info.Labels)
	info, err := s.sn.Update(ctx, info, fieldpaths...)
	return hideLabels(info), classify(err)
}

// Usage returns the disk space the snapshot's own changes take.
func (s *Snapshotter) Usage(ctx context.Context, key string) (snapshots.Usage, error) {
	u, err := s.sn.Usage(ctx, key)
	return u, classify(err)
}

// Mounts returns the mounts of the active or view snapshot key.
func (s *Snapshotter) Mounts(ctx context.Context, key string) ([]mount.Mount, error) {
	m, err := s.sn.Mounts(ctx, key)
	return m, classify(err)
}

// Prepare creates the active snapshot key on the committed parent.
func (s *Snapshotter) Prepare(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	m, err := s.sn.Prepare(ctx, key, parent, opts...)
	return m, classify(err)
}

// View creates the read-only snapshot key of the committed parent.
func (s *Snapshotter) View(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	m, err := s.sn.View(ctx, key, parent, opts...)
	return m, classify(err)
}

// Commit turns the active snapshot key into the committed snapshot name.
func (s *Snapshotter) Commit(ctx context.Context, name, key string, opts ...snapshots.Opt) error {
	return classify(s.sn.Commit(ctx, name, key, opts...))
}

// Remove removes a snapshot that has no children.
func (s *Snapshotter) Remove(ctx context.Context, key string) error {
	return classify(s.sn.Remove(ctx, key))
}

// Walk calls fn for every snapshot matching the filters.
// An empty snapshotter walks nothing (containerd's reports not found).
func (s *Snapshotter) Walk(ctx context.Context, fn snapshots.WalkFunc, filters ...string) error {
	var fnErr error
	err := s.sn.Walk(ctx, func(ctx context.Context, info snapshots.Info) error {
		fnErr = fn(ctx, hideLabels(info))
		return fnErr
	}, filters...)
	if err != nil && fnErr == nil && errdefs.IsNotFound(classify(err)) {
		return nil // no snapshot was ever made: the bucket is not there yet
	}
	return classify(err)
}

// Cleanup frees the disk space of removed snapshots where the snapshotter
// defers it.
func (s *Snapshotter) Cleanup(ctx context.Context) error {
	if c, ok := s.sn.(snapshots.Cleaner); ok {
		err := classify(c.Cleanup(ctx))
		if errdefs.IsNotFound(err) {
			return nil // no snapshot was ever made
		}
		return err
	}
	return nil
}

// Close releases the snapshotter's metadata database.
func (s *Snapshotter) Close() error { return classify(s.sn.Close()) }

// mountRoot is where WithView and WithActive create mount points.
func (s *Snapshotter) mountRoot() string { return s.mountDir }

// removeTemp removes the temporary snapshots a crashed process left.
func (s *Snapshotter) removeTemp(ctx context.Context) error {
	var stale []string
	err := s.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		if strings.HasPrefix(info.Name, tempPrefix) && info.Kind != snapshots.KindCommitted {
			stale = append(stale, info.Name)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("snapshotter: list snapshots: %w", classify(err))
	}
	for _, key := range stale {
		if err := s.sn.Remove(ctx, key); err != nil && !errdefs.IsNotFound(classify(err)) {
			return fmt.Errorf("snapshotter: remove stale snapshot %s: %w", key, classify(err))
		}
	}
	return s.Cleanup(ctx)
}

// cleanMountDir unmounts and removes every mount point left in dir.
func cleanMountDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if err := mount.UnmountAll(p, 0); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
			continue
		}
		// Remove, not RemoveAll: if it were still mounted, RemoveAll
		// would delete snapshot data.
		if err := os.Remove(p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// probeOverlay mounts a two-layer overlay under dir, writes through it and
// unmounts it, reporting why if any step fails.
func probeOverlay(dir string) (err error) {
	td, err := os.MkdirTemp(dir, "overlay-probe-")
	if err != nil {
		return err
	}
	defer func() {
		if rerr := os.RemoveAll(td); rerr != nil && err == nil {
			err = rerr
		}
	}()
	for _, d := range []string{"l1", "l2", "upper", "work", "merged"} {
		if err := os.Mkdir(filepath.Join(td, d), 0o700); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(td, "l2", "f"), []byte("probe"), 0o600); err != nil {
		return err
	}
	m := mount.Mount{
		Type:   "overlay",
		Source: "overlay",
		Options: []string{
			"lowerdir=" + filepath.Join(td, "l1") + ":" + filepath.Join(td, "l2"),
			"upperdir=" + filepath.Join(td, "upper"),
			"workdir=" + filepath.Join(td, "work"),
		},
	}
	merged := filepath.Join(td, "merged")
	if err := m.Mount(merged); err != nil {
		return err
	}
	defer func() {
		if uerr := mount.UnmountAll(merged, 0); uerr != nil {
			err = errors.Join(err, uerr)
		}
	}()
	if _, err := os.Stat(filepath.Join(merged, "f")); err != nil {
		return fmt.Errorf("lower file not visible through overlay: %w", err)
	}
	return os.WriteFile(filepath.Join(merged, "g"), []byte("probe"), 0o600)
}
