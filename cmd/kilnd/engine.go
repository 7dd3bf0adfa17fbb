package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	ctrdlog "github.com/containerd/log"
	"github.com/containerd/platforms"

	"github.com/kiln-build/kiln/cache/remote"
	cachelocal "github.com/kiln-build/kiln/cache/remote/local"
	cacheredis "github.com/kiln-build/kiln/cache/remote/redis"
	cacheregistry "github.com/kiln-build/kiln/cache/remote/registry"
	"github.com/kiln-build/kiln/config"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/engine"
	"github.com/kiln-build/kiln/executor/runc"
	"github.com/kiln-build/kiln/frontend"
	"github.com/kiln-build/kiln/frontend/dockerfile"
	"github.com/kiln-build/kiln/frontend/gateway"
	"github.com/kiln-build/kiln/registry"
)

// openEngine wires the engine from the configuration: the frontends by
// name, the worker's storage and runtime on the root, the registry hosts.
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
		UIDMap:         uidMap,
		GIDMap:         gidMap,
		Root:           cfg.Root,
		Snapshotter:    oci.Snapshotter,
		Runtime:        oci.Binary,
		AllowInsecure:  allowInsecure,
		Allowed:        allowed,
		MaxParallelism: oci.MaxParallelism,
		NetworkMode:    oci.NetworkMode,
		Registry:       hosts,
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
			Shared: func(ctx context.Context, d remote.Deps) ([]*remote.Shared, error) {
				return sharedCaches(ctx, cfg.Cache, d)
			},
			Importers: map[string]remote.ImportFactory{
				remote.TypeRegistry: cacheregistry.ImportFactory,
				remote.TypeLocal:    cachelocal.ImportFactory,
			},
			Exporters: map[string]remote.ExportFactory{
				remote.TypeRegistry: cacheregistry.ExportFactory,
				remote.TypeLocal:    cachelocal.ExportFactory,
				remote.TypeInline:   remote.InlineFactory,
			},
		},
	})
}

// sharedCaches makes a shared cache of each [[cache.registry]] index over
// the [[cache.blob]] stores (read from the first that has a blob, written
// to all).
func sharedCaches(ctx context.Context, c config.Cache, d remote.Deps) ([]*remote.Shared, error) {
	log := d.Logger
	if len(c.Registry) == 0 {
		if len(c.Blob) > 0 {
			log.Warn("[[cache.blob]] is configured without a [[cache.registry]] index: the blob store is not used")
		}
		return nil, nil
	}
	if len(c.Blob) == 0 {
		return nil, errdefs.Invalidf("kilnd.toml: [[cache.registry]] needs a [[cache.blob]] to keep the layers its records name (type = \"filesystem\", path = a directory every daemon shares)")
	}
	var stores []remote.BlobStore
	for _, b := range c.Blob {
		switch b.Type {
		case "filesystem":
			fs, err := remote.OpenFileStore(b.Path)
			if err != nil {
				return nil, fmt.Errorf("[[cache.blob]] %s: %w", b.Path, err)
			}
			stores = append(stores, fs)
		case "registry":
			rs, err := cacheregistry.NewBlobs(d.Resolver, b.Ref)
			if err != nil {
				return nil, fmt.Errorf("[[cache.blob]] %s: %w", b.Ref, err)
			}
			stores = append(stores, rs)
		default:
			return nil, errdefs.Invalidf("[[cache.blob]] type %q: unsupported (supported: filesystem, registry)", b.Type)
		}
	}
	blobs := remote.MultiStore(stores...)
	var out []*remote.Shared
	for _, r := range c.Registry {
		if r.Type != "redis" {
			return nil, errdefs.Invalidf("[[cache.registry]] type %q: unsupported (supported: redis)", r.Type)
		}
		idx, err := cacheredis.New(cacheredis.Options{Addr: r.RedisAddr, TTL: time.Duration(r.TTL), Logger: log})
		if err != nil {
			return nil, err
		}
		// Say at start whether the index answers; builds go on without
		// it either way.
		go func() {
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			if err := idx.Ping(pctx); err != nil {
				log.Warn("shared cache index does not answer; builds use the local cache until it does", "redis", idx.Addr(), "error", err)
			} else {
				log.Info("shared cache", "redis", idx.Addr(), "writer", d.Writer)
			}
		}()
		sc, err := remote.NewShared(remote.SharedOptions{
			Name: "redis", Index: idx, Blobs: blobs, Writer: d.Writer, Importer: d.Importer,
			Layers: d.Layers, Local: d.Local, Logger: log,
			Sync: r.Export == config.CacheExportSync, FlushTimeout: time.Duration(r.FlushTimeout),
			Compression: r.Compression,
		})
		if err != nil {
			return nil, err
		}
		out = append(out, sc)
	}
	return out, nil
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
