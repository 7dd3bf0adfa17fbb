package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"

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
	// The platforms Kiln's own Info reports (native, then those binfmt
	// emulates), plus those BuildKit's worker lists beside them: 386 on
	// amd64 (it runs natively) and arm/v6 wherever arm/v7 runs.
	list := append(slices.Clone(w.Platforms), w.EmulatedPlatforms...)
	if runtime.GOARCH == "amd64" {
		list = append(list, "linux/386")
	}
	if slices.Contains(list, "linux/arm/v7") {
		list = append(list, "linux/arm/v6")
	}
	plats, err := buildkit.ParsePlatforms(list)
	if err != nil {
		return nil, err
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
