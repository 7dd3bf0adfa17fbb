package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/containerd/platforms"

	"github.com/kiln-build/kiln/api"
	"github.com/kiln-build/kiln/cache/remote"
	"github.com/kiln-build/kiln/config"
	"github.com/kiln-build/kiln/daemon/buildkit"
	"github.com/kiln-build/kiln/engine"
	"github.com/kiln-build/kiln/gc"
)

// newBuildKit makes BuildKit's API over the engine (buildctl and docker
// buildx with the remote driver), served next to Kiln's own.
func newBuildKit(cfg *config.Config, eng *engine.Engine, w *api.WorkerInfo, policies []gc.Policy, log *slog.Logger) (*buildkit.Service, error) {
	plats, err := buildkit.ParsePlatforms(w.Platforms)
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, p := range plats {
		have[platforms.Format(p)] = true
	}
	for _, p := range buildkit.EmulatedPlatforms("/proc/sys/fs/binfmt_misc") {
		if !have[platforms.Format(p)] {
			have[platforms.Format(p)] = true
			plats = append(plats, p)
		}
	}
	host, _ := os.Hostname()
	id, err := remote.WriterID(cfg.Root)
	if err != nil {
		return nil, err
	}
	return buildkit.New(buildkit.Options{
		Engine: eng,
		Worker: buildkit.Worker{
			ID: id, Platforms: plats,
			Labels:   buildkit.WorkerLabels(host, w.Snapshotter, cfg.Worker.OCI.NetworkMode),
			GCPolicy: bkPolicies(cfg, policies),
		},
		Version: version, Revision: revision,
		ScratchDir: filepath.Join(cfg.Root, "tmp", "buildkit"),
		History:    eng.History(),
		Disk:       eng.Disk(),
		Logger:     log,
	})
}

// bkPolicies describes the automatic gc's policies as BuildKit's workers
// report theirs.
func bkPolicies(cfg *config.Config, policies []gc.Policy) []buildkit.GCPolicy {
	if !cfg.Worker.OCI.GC {
		return nil
	}
	if len(policies) == 0 {
		return []buildkit.GCPolicy{{All: true, MaxUsedSpace: int64(cfg.Worker.OCI.CacheSize)}}
	}
	var out []buildkit.GCPolicy
	for _, p := range policies {
		bp := buildkit.GCPolicy{All: p.All, KeepDuration: p.KeepDuration, MaxUsedSpace: p.KeepBytes, ReservedSpace: p.ReservedBytes, MinFreeSpace: p.MinFreeBytes}
		for _, t := range p.Types {
			bp.Filters = append(bp.Filters, fmt.Sprintf("type==%s", t))
		}
		out = append(out, bp)
	}
	return out
}
