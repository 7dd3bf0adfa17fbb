package main

import (
	"context"
	"log/slog"

	ctrdlog "github.com/containerd/log"
	"github.com/containerd/platforms"

	"github.com/kiln-build/kiln/config"
	"github.com/kiln-build/kiln/engine"
	"github.com/kiln-build/kiln/frontend"
	"github.com/kiln-build/kiln/frontend/dockerfile"
	"github.com/kiln-build/kiln/registry"
)

// openEngine wires the engine from the configuration: the frontends by
// name, the worker's storage and runtime on the root, the registry hosts.
func openEngine(ctx context.Context, cfg *config.Config, log *slog.Logger) (*engine.Engine, *engine.Parts, error) {
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
	return engine.Open(ctx, engine.Options{
		Root:           cfg.Root,
		Snapshotter:    oci.Snapshotter,
		Runtime:        oci.Binary,
		AllowInsecure:  allowInsecure,
		Allowed:        allowed,
		MaxParallelism: oci.MaxParallelism,
		Registry:       hosts,
		Frontends:      map[string]frontend.Frontend{"dockerfile": dockerfile.New()},
		Platform:       platforms.DefaultSpec(),
		Logger:         log,
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
