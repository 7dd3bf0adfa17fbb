package main

import (
	"context"
	"fmt"
	"log/slog"

	ctrdlog "github.com/containerd/log"
	"github.com/containerd/platforms"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/config"
	"github.com/kiln-build/kiln/engine"
	"github.com/kiln-build/kiln/executor/runc"
	"github.com/kiln-build/kiln/frontend"
	"github.com/kiln-build/kiln/frontend/dockerfile"
	"github.com/kiln-build/kiln/frontend/gateway"
	"github.com/kiln-build/kiln/registry"
	"github.com/kiln-build/kiln/sched"
)

// openEngine wires the engine from the configuration: the frontends, the
// exporters and the cache backends by name, the worker's storage and
// runtime on the root, the registry hosts.
func openEngine(ctx context.Context, cfg *config.Config, log *slog.Logger, gc engine.GCOptions) (*engine.Engine, error) {
	// containerd's packages log through a process-wide logrus logger; keep
	// its noise (fsverity probes) out of kilnd's log.
	_ = ctrdlog.SetLevel("error")

	hosts := map[string]registry.HostConfig{}
	for host, h := range cfg.Registry {
		hc := registry.HostConfig{
			Mirrors: h.Mirrors, PlainHTTP: h.HTTP, Insecure: h.Insecure, CAFiles: h.CA,
			ConfigFile: h.ConfigFile, Username: h.Username, Password: h.Password,
		}
		for _, kp := range h.KeyPair {
			hc.KeyPairs = append(hc.KeyPairs, registry.KeyPair{CertFile: kp.Cert, KeyFile: kp.Key})
		}
		hosts[host] = hc
	}
	allowInsecure := false
	var allowed []string
	for _, e := range cfg.InsecureEntitlements {
		if e == engine.EntitlementSecurityInsecure {
			allowInsecure = true
		}
		allowed = append(allowed, e)
	}
	oci := cfg.Worker.OCI
	var uidMap, gidMap []runc.IDMap
	if cfg.Rootless.Enabled {
		var err error
		if uidMap, err = idMap("uid-map", cfg.Rootless.UIDMap); err != nil {
			return nil, err
		}
		if gidMap, err = idMap("gid-map", cfg.Rootless.GIDMap); err != nil {
			return nil, err
		}
	}
	outputs, err := exporters(cfg.Exporter)
	if err != nil {
		return nil, err
	}
	return engine.Open(ctx, engine.Options{
		UIDMap:        uidMap,
		GIDMap:        gidMap,
		Root:          cfg.Root,
		Snapshotter:   oci.Snapshotter,
		Runtime:       oci.RuntimeBinary(),
		AllowInsecure: allowInsecure,
		Allowed:       allowed,
		Admission: sched.Config{
			MaxParallelism: oci.MaxParallelism,
			CPUPressure:    oci.CPUPressure,
			MemoryPressure: oci.MemoryPressure,
			IOPressure:     oci.IOPressure,
			MemoryReserve:  memoryReserve(oci.MemoryReserve),
		},
		NetworkMode: oci.NetworkMode,
		Registry:    hosts,
		Frontends: map[string]frontend.Frontend{
			engine.FrontendDockerfile: dockerfile.New(),
			gateway.Name:              gateway.New(),
		},
		Syntax: engine.SyntaxPolicy{
			Disabled:            !cfg.Frontend.Gateway,
			Pin:                 cfg.Frontend.Syntax,
			Builtin:             cfg.Frontend.BuiltinSyntax,
			AllowedRepositories: cfg.Frontend.AllowedRepositories,
		},
		Exporters: outputs,
		GC:        gc,
		Platform:  platforms.DefaultSpec(),
		Logger:    log,
		Caches: engine.CacheBackends{
			Types:   cacheBackends(),
			Indexes: cfg.CacheTables("registry"),
			Blobs:   cfg.CacheTables("blob"),
		},
	})
}

// gcCacheSize is the size the automatic gc keeps the cache under: the
// configured cache-size when gc is on.
func gcCacheSize(cfg *config.Config) int64 {
	if !cfg.Worker.OCI.GC {
		return 0
	}
	return int64(cfg.Worker.OCI.CacheSize)
}

// defaultIDMap is the user namespace map of [rootless] enabled without
// uid-map or gid-map: the container's 65536 ids from host id 100000, as
// a first /etc/subuid entry usually is.
const defaultIDMap = "0:100000:65536"

// idMap parses a [rootless] map (checked when the file was loaded), or
// the default one.
func idMap(key, value string) ([]runc.IDMap, error) {
	if value == "" {
		value = defaultIDMap
	}
	m, err := config.ParseIDMap(value)
	if err != nil {
		return nil, fmt.Errorf("[rootless] %s: %w", key, err)
	}
	return m, nil
}

// memoryReserve is [worker.oci] memory-reserve in bytes: a percentage is
// of the machine's memory.
func memoryReserve(r config.DiskSpace) int64 {
	if r.Percent == 0 {
		return int64(r.Bytes)
	}
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) != nil {
		return 0
	}
	return int64(si.Totalram) * int64(si.Unit) * int64(r.Percent) / 100
}
