package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	cachebolt "github.com/kiln-build/kiln/cache/bolt"
	"github.com/kiln-build/kiln/cache/remote"
	"github.com/kiln-build/kiln/content"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/executor/runc"
	"github.com/kiln-build/kiln/exporter"
	"github.com/kiln-build/kiln/frontend"
	"github.com/kiln-build/kiln/graph"
	"github.com/kiln-build/kiln/imagestore"
	"github.com/kiln-build/kiln/ops"
	"github.com/kiln-build/kiln/ops/exec"
	"github.com/kiln-build/kiln/registry"
	"github.com/kiln-build/kiln/snapshot"
	"github.com/kiln-build/kiln/solver"
	"github.com/kiln-build/kiln/source/git"
	srchttp "github.com/kiln-build/kiln/source/http"
	"github.com/kiln-build/kiln/source/image"
	"github.com/kiln-build/kiln/source/local"
	"github.com/kiln-build/kiln/worker"
)

// Options are what Open needs to assemble a daemon's engine on a root
// directory. cmd/kilnd fills them from kilnd.toml; tests fill them directly.
type Options struct {
	Root           string
	Snapshotter    string // auto | overlayfs | native
	Runtime        string // runc | crun | a path
	AllowInsecure  bool   // the daemon grants security.insecure
	Allowed        []string
	MaxParallelism int
	// NetworkMode is the default network of RUN steps: "" or "auto" or
	// "host" (the host's), "none".
	NetworkMode string
	// UIDMap and GIDMap, when set, run RUN steps in a user namespace with
	// these maps ([rootless] enabled): root in a step is an unprivileged
	// user on the host.
	UIDMap, GIDMap []runc.IDMap
	Registry       map[string]registry.HostConfig
	// Frontends by name (cmd/kilnd passes {"dockerfile": dockerfile.New()}).
	Frontends map[string]frontend.Frontend
	Platform  ocispec.Platform
	Logger    *slog.Logger
	// RemoteCaches and CacheExporters are daemon-wide caches given as
	// they are (tests); Caches makes the configured ones and the
	// per-build backends.
	RemoteCaches   []solver.RemoteCache
	CacheExporters []solver.Exporter
	Caches         CacheBackends
	// Syntax says what `# syntax=` and BUILDKIT_SYNTAX do (kilnd.toml
	// [frontend]).
	Syntax SyntaxPolicy
}

// Parts are the pieces Open assembled, for the daemon's other services
// (disk usage, images, run) and for tests.
type Parts struct {
	Root        string
	DB          *bolt.DB
	Content     content.Store
	Snapshotter *snapshot.Snapshotter
	Snapshots   *worker.Snapshots
	Worker      *worker.Worker
	Executor    *runc.Executor
	CacheStore  *cachebolt.Store
	CacheMounts *exec.CacheMounts
	Contexts    *local.Store
	Images      *imagestore.Store
	Puller      *image.Puller
	Resolver    *registry.Resolver
	Layers      *exporter.Layers
	Solver      *solver.Solver
	History     *History
	// CacheImporter imports remote cache hits; CacheWriter is this
	// daemon's writer id in shared caches (kept in the root).
	CacheImporter *remote.Importer
	CacheWriter   string
	// SharedCaches are the daemon-wide shared caches (kilnd.toml);
	// kiln du reports their usage (Shared.Usage).
	SharedCaches []*remote.Shared
}

// Open assembles an engine on opts.Root, taking over what a crashed daemon
// left there. Close releases it.
func Open(ctx context.Context, opts Options) (e *Engine, p *Parts, err error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	root := opts.Root
	if err := os.MkdirAll(root, 0o711); err != nil {
		return nil, nil, fmt.Errorf("create root %s: %w", root, err)
	}
	p = &Parts{Root: root}
	var closers []func() error
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				_ = closers[i]()
			}
		}
	}()

	var defaultNetwork graph.NetMode
	switch opts.NetworkMode {
	case "", "auto", "host":
	case "none":
		defaultNetwork = graph.NetNone
	default:
		return nil, nil, errdefs.Invalidf("[worker.oci] network-mode %q is not supported by this kilnd (want auto, host or none)", opts.NetworkMode)
	}
	p.DB, err = bolt.Open(filepath.Join(root, "metadata.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", filepath.Join(root, "metadata.db"), err)
	}
	closers = append(closers, p.DB.Close)
	if p.Content, err = content.Open(p.ContentDir()); err != nil {
		return nil, nil, err
	}
	kind := opts.Snapshotter
	if kind == "" {
		kind = snapshot.KindAuto
	}
	if p.Snapshotter, err = snapshot.New(root, kind); err != nil {
		return nil, nil, err
	}
	closers = append(closers, p.Snapshotter.Close)
	if p.Snapshots, err = worker.NewSnapshots(ctx, p.Snapshotter); err != nil {
		return nil, nil, err
	}
	runtime := opts.Runtime
	if runtime == "" {
		runtime = "runc"
	}
	execOpts := []runc.Option{runc.WithRuntime(runtime), runc.WithInsecureAllowed(opts.AllowInsecure)}
	if len(opts.UIDMap) > 0 || len(opts.GIDMap) > 0 {
		execOpts = append(execOpts, runc.WithUserNamespace(opts.UIDMap, opts.GIDMap))
	}
	if p.Executor, err = runc.New(root, execOpts...); err != nil {
		return nil, nil, err
	}
	closers = append(closers, p.Executor.Close)
	if err := p.Executor.Cleanup(ctx); err != nil {
		return nil, nil, fmt.Errorf("clean up containers of an earlier run: %w", err)
	}
	if p.CacheMounts, err = exec.NewCacheMounts(filepath.Join(root, "cachemounts")); err != nil {
		return nil, nil, err
	}
	if p.Contexts, err = local.NewStore(filepath.Join(root, "contexts")); err != nil {
		return nil, nil, err
	}
	closers = append(closers, p.Contexts.Close)
	if p.Resolver, err = registry.New(opts.Registry, registry.WithLogger(opts.Logger)); err != nil {
		return nil, nil, err
	}
	if p.Images, err = imagestore.New(p.DB, p.Content); err != nil {
		return nil, nil, err
	}
	p.Puller = image.NewPuller(p.Resolver, p.Content, p.Snapshotter, p.Images, image.WithLogger(opts.Logger))
	httpCache, err := srchttp.NewCache(filepath.Join(root, "http"))
	if err != nil {
		return nil, nil, err
	}
	gitCache, err := git.NewCache(filepath.Join(root, "git"))
	if err != nil {
		return nil, nil, err
	}
	p.Worker, err = worker.New(worker.Config{
		Snapshots: p.Snapshots, Executor: p.Executor, CacheMounts: p.CacheMounts, Contexts: p.Contexts,
		Puller: p.Puller, HTTP: httpCache, Git: gitCache, StateDir: filepath.Join(root, "steps"),
		DefaultNetwork: defaultNetwork,
	})
	if err != nil {
		return nil, nil, err
	}
	if p.CacheStore, err = cachebolt.New(p.DB); err != nil {
		return nil, nil, err
	}
	closers = append(closers, p.CacheStore.Flush)
	p.Layers = exporter.NewLayers(p.Content, p.Snapshotter)
	p.CacheImporter = remote.NewImporter(p.Content, p.Snapshotter, func(ctx context.Context, name string) (ops.Ref, error) {
		return p.Snapshots.Load(ctx, name)
	})
	if p.CacheWriter, err = remote.WriterID(root); err != nil {
		return nil, nil, err
	}
	cacheTmp := filepath.Join(root, "tmp", "cache")
	if err := os.RemoveAll(cacheTmp); err != nil {
		return nil, nil, fmt.Errorf("clean %s: %w", cacheTmp, err)
	}
	remotes, exporters := opts.RemoteCaches, opts.CacheExporters
	if opts.Caches.Shared != nil {
		if p.SharedCaches, err = opts.Caches.Shared(ctx, p); err != nil {
			return nil, nil, err
		}
		for _, sc := range p.SharedCaches {
			closers = append(closers, sc.Close)
			remotes = append(remotes, sc)
			exporters = append(exporters, sc)
		}
	}
	p.Solver = solver.New(p.Worker, p.CacheStore,
		solver.WithMaxParallelism(opts.MaxParallelism),
		solver.WithRemoteCaches(remotes...),
		solver.WithExporters(exporters...))
	if p.History, err = NewHistory(p.DB); err != nil {
		return nil, nil, err
	}
	// Results gateway frontends read are mounted under the worker's state
	// directory, which worker.New empties at start.
	mountDir := filepath.Join(root, "steps", "frontend")
	if err := os.MkdirAll(mountDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("create %s: %w", mountDir, err)
	}
	allowed := opts.Allowed
	if opts.AllowInsecure {
		allowed = append(allowed, EntitlementSecurityInsecure)
	}
	e, err = New(Config{
		Frontends: opts.Frontends, Solver: p.Solver, Puller: p.Puller, Layers: p.Layers,
		Images: p.Images, Resolver: p.Resolver, History: p.History, Platform: opts.Platform,
		Allowed: allowed, Logger: opts.Logger,
		Caches: opts.Caches, CacheImporter: p.CacheImporter, CacheWriter: p.CacheWriter, CacheTempDir: cacheTmp, ContentDir: p.ContentDir(),
		Syntax: opts.Syntax, Executor: p.Executor, Snapshots: p.Snapshots, MountDir: mountDir,
	})
	if err != nil {
		return nil, nil, err
	}
	e.closers = closers
	return e, p, nil
}

// ContentDir returns the content store's directory.
func (p *Parts) ContentDir() string { return filepath.Join(p.Root, "content") }

// Close releases what Open opened, newest first.
func (e *Engine) Close() error {
	var errs []error
	for i := len(e.closers) - 1; i >= 0; i-- {
		errs = append(errs, e.closers[i]())
	}
	e.closers = nil
	return errors.Join(errs...)
}
