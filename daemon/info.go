package daemon

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/plugins/snapshots/overlay/overlayutils"
	"github.com/containerd/platforms"

	"github.com/kiln-build/kiln/api"
	"github.com/kiln-build/kiln/config"
	"github.com/kiln-build/kiln/internal/binfmt"
)

// DetectWorker describes the worker the configuration asks for on this
// machine: the runtime binary resolved on PATH (and the sbin directories),
// the snapshotter ("auto" becomes "overlayfs" when an overlay mount works
// in the root directory, else "native"), the native platform plus the
// configured ones, max-parallelism, cache size and network mode.
//
// It fails when the snapshotter is "overlayfs" and overlay does not work in
// the root. A runtime that is not installed is not an error here (Info
// reports an empty runtime_path; builds fail with a clear message).
func DetectWorker(ctx context.Context, cfg *config.Config) (*api.WorkerInfo, error) {
	snap := "native"
	switch cfg.Worker.OCI.Snapshotter {
	case "native":
	case "overlayfs":
		if err := probeOverlay(cfg.Root); err != nil {
			return nil, fmt.Errorf("[worker.oci] snapshotter = \"overlayfs\", but overlay does not work in %s: %w (use \"auto\" or \"native\")", cfg.Root, err)
		}
		snap = "overlayfs"
	default:
		if probeOverlay(cfg.Root) == nil {
			snap = "overlayfs"
		}
	}
	w, err := DescribeWorker(cfg, snap)
	if err != nil {
		return nil, err
	}
	return w, ctx.Err()
}

// DescribeWorker describes the worker of cfg whose snapshotter is known
// already (kilnd passes the one the engine opened, so the overlay probe
// does not run twice at start).
func DescribeWorker(cfg *config.Config, snapshotter string) (*api.WorkerInfo, error) {
	o := cfg.Worker.OCI
	w := &api.WorkerInfo{
		Runtime:        runtimeName(o.RuntimeBinary()),
		RuntimePath:    lookRuntime(o.RuntimeBinary()),
		MaxParallelism: int32(o.MaxParallelism),
		CacheSize:      int64(o.CacheSize),
		NetworkMode:    o.NetworkMode,
		Snapshotter:    snapshotter,
	}
	native := platforms.Format(platforms.DefaultSpec())
	w.Platforms = []string{native}
	// binfmt_misc is only read; a host without it just emulates nothing.
	if entries, err := binfmt.Read(binfmt.Dir); err == nil {
		w.EmulatedPlatforms = binfmt.EmulatedPlatforms(entries, native)
	}
	for _, p := range o.Platforms {
		pl, err := platforms.Parse(p)
		if err != nil {
			return nil, fmt.Errorf("[worker.oci] platforms: %w", err)
		}
		if s := platforms.Format(pl); !slices.Contains(w.Platforms, s) {
			w.Platforms = append(w.Platforms, s)
		}
	}
	return w, nil
}

// probeOverlay mounts a tiny overlay under root/tmp to see whether the
// overlay snapshotter can work there.
func probeOverlay(root string) error {
	dir := filepath.Join(root, "tmp")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return overlayutils.Supported(dir)
}

func runtimeName(binary string) string {
	return filepath.Base(binary)
}

// lookRuntime resolves the runtime binary on PATH, then in the sbin
// directories a non-root PATH may lack.
func lookRuntime(binary string) string {
	if p, err := exec.LookPath(binary); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			return abs
		}
		return p
	}
	if filepath.IsAbs(binary) {
		return ""
	}
	for _, dir := range []string{"/usr/local/sbin", "/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, binary)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// cacheBackends describes the configured shared caches for Info, without
// secrets: each table's type and where it is (the first value that reads
// as a path, reference or address; only the host of a URL).
func cacheBackends(c config.Cache) []string {
	var out []string
	for _, t := range append(slices.Clone(c.Blob), c.Registry...) {
		where := ""
		for _, k := range slices.Sorted(maps.Keys(t)) {
			v, ok := t[k].(string)
			if k == "type" || !ok || !strings.ContainsAny(v, "/:") {
				continue
			}
			where = v
			if u, err := url.Parse(v); err == nil && u.Scheme != "" && u.Host != "" {
				where = u.Host
			}
			break
		}
		out = append(out, t.Type()+":"+where)
	}
	return out
}
