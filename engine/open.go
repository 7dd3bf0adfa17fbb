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
	"github.com/kiln-build/kiln/core/sandbox"
	"github.com/kiln-build/kiln/engine/disk"
	"github.com/kiln-build/kiln/engine/history"
	"github.com/kiln-build/kiln/engine/images"
	"github.com/kiln-build/kiln/engine/run"
	"github.com/kiln-build/kiln/engine/sharedcache"
	"github.com/kiln-build/kiln/executor/runc"
	"github.com/kiln-build/kiln/exporter"
	"github.com/kiln-build/kiln/frontend"
	"github.com/kiln-build/kiln/gc"
	"github.com/kiln-build/kiln/imagestore"
	"github.com/kiln-build/kiln/layer"
	"github.com/kiln-build/kiln/ops"
	"github.com/kiln-build/kiln/ops/exec"
	"github.com/kiln-build/kiln/registry"
	"github.com/kiln-build/kiln/sched"
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
	Root          string
	Snapshotter   string // auto | overlayfs | native
	Runtime       string // runc | crun | a path
	AllowInsecure bool   // the daemon grants security.insecure
	Allowed       []string
	// Admission is the policy by which steps that run a container start
	// (package sched).
	Admission sched.Config
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
	// Exporters are the --output types by name (cmd/kilnd passes
	// {"image": exporter.ImageFactory(), ...}).
	Exporters map[string]exporter.Factory
	Platform  ocispec.Platform
	Logger    *slog.Logger
	// RemoteCaches and CacheExporters are daemon-wide caches given as
	// they are (tests); Caches are the cache backends by name, which make
	// the per-build caches and the configured shared ones.
	RemoteCaches   []solver.RemoteCache
	CacheExporters []solver.Exporter
	Caches         CacheBackends
	// GC is the automatic gc after builds.
	GC GCOptions
	// Syntax says what `# syntax=` and BUILDKIT_SYNTAX do (kilnd.toml
	// [frontend]).
	Syntax SyntaxPolicy
}

// GCOptions configure the automatic gc after builds (disk.Service).
type GCOptions struct {
	// CacheSize keeps the build cache under this many bytes (0: off)...
	CacheSize int64
	// ...unless Policies are set, which are applied in order instead
	// ([[worker.oci.gcpolicy]]).
	Policies []gc.Policy
}

// Open assembles an engine on opts.Root, taking over what a crashed daemon
// left there. Close releases it.
func Open(ctx context.Context, opts Options) (_ *Engine, err error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if len(opts.Frontends) == 0 {
		return nil, errdefs.Invalidf("engine: no frontend")
	}
	if opts.Platform.OS == "" {
		opts.Platform = defaultPlatform()
	}
	// The shared cache tables are checked before anything is opened.
	openShared, err := opts.Caches.Types.Shared(opts.Caches.Indexes, opts.Caches.Blobs)
	if err != nil {
		return nil, err
	}
	root := opts.Root
	if err := os.MkdirAll(root, 0o711); err != nil {
		return nil, fmt.Errorf("create root %s: %w", root, err)
	}
	e := &Engine{
		root: root, log: opts.Logger, platform: opts.Platform, frontends: opts.Frontends,
		outputs: opts.Exporters, backends: opts.Caches, running: newRunning(),
	}
	defer func() {
		if err != nil {
			_ = e.Close()
		}
	}()

	mode := opts.NetworkMode
	if mode == "auto" {
		mode = ""
	}
	defaultNetwork, ok := sandbox.ParseNetMode(mode)
	if !ok || mode == "default" {
		return nil, errdefs.Invalidf("[worker.oci] network-mode %q is not supported by this kilnd (want auto, host or none)", opts.NetworkMode)
	}
	dbPath := filepath.Join(root, "metadata.db")
	if e.db, err = bolt.Open(dbPath, 0o600, &bolt.Options{Timeout: 5 * time.Second}); err != nil {
		return nil, fmt.Errorf("open %s: %w", dbPath, err)
	}
	e.closers = append(e.closers, e.db.Close)
	if e.content, err = content.Open(e.contentDir()); err != nil {
		return nil, err
	}
	kind := opts.Snapshotter
	if kind == "" {
		kind = snapshot.KindAuto
	}
	if e.snapshotter, err = snapshot.New(root, kind); err != nil {
		return nil, err
	}
	e.closers = append(e.closers, e.snapshotter.Close)
	snaps, err := worker.NewSnapshots(ctx, e.snapshotter)
	if err != nil {
		return nil, err
	}
	runtime := opts.Runtime
	if runtime == "" {
		runtime = "runc"
	}
	execOpts := []runc.Option{runc.WithRuntime(runtime), runc.WithInsecureAllowed(opts.AllowInsecure), runc.WithLogger(opts.Logger)}
	// The executor finds the cgroup hierarchy itself; Accounting below
	// says why steps are not measured when it cannot.
	if len(opts.UIDMap) > 0 || len(opts.GIDMap) > 0 {
		execOpts = append(execOpts, runc.WithUserNamespace(opts.UIDMap, opts.GIDMap))
	}
	executor, err := runc.New(root, execOpts...)
	if err != nil {
		return nil, err
	}
	e.closers = append(e.closers, executor.Close)
	if mode, err := executor.Accounting(); err != nil {
		opts.Logger.Warn("steps are not measured (no CPU time or peak memory per step; steps start by count)", "reason", err)
	} else {
		opts.Logger.Debug("steps are measured", "cgroups", mode.String(), "parent", executor.Steps().Path())
	}
	if err := executor.Cleanup(ctx); err != nil {
		return nil, fmt.Errorf("clean up containers of an earlier run: %w", err)
	}
	executor.Warm()
	cacheMounts, err := exec.NewCacheMounts(filepath.Join(root, "cachemounts"))
	if err != nil {
		return nil, err
	}
	contexts, err := local.NewStore(filepath.Join(root, "contexts"))
	if err != nil {
		return nil, err
	}
	e.closers = append(e.closers, contexts.Close)
	if e.resolver, err = registry.New(opts.Registry, registry.WithLogger(opts.Logger)); err != nil {
		return nil, err
	}
	if e.imageStore, err = imagestore.New(e.db, e.content); err != nil {
		return nil, err
	}
	e.puller = image.NewPuller(e.resolver, e.content, e.snapshotter, e.imageStore, image.WithLogger(opts.Logger))
	httpCache, err := srchttp.NewCache(filepath.Join(root, "http"))
	if err != nil {
		return nil, err
	}
	gitCache, err := git.NewCache(filepath.Join(root, "git"), git.WithLogger(opts.Logger))
	if err != nil {
		return nil, err
	}
	w, err := worker.New(worker.Config{
		Snapshots: snaps, Executor: executor, CacheMounts: cacheMounts, Contexts: contexts,
		Puller: e.puller, HTTP: httpCache, Git: gitCache, StateDir: filepath.Join(root, "steps"),
		DefaultNetwork: defaultNetwork,
	})
	if err != nil {
		return nil, err
	}
	if e.cacheStore, err = cachebolt.New(e.db); err != nil {
		return nil, err
	}
	e.closers = append(e.closers, e.cacheStore.Flush)
	e.layers = layer.NewMaker(e.content, e.snapshotter)
	e.cacheImporter = remote.NewImporter(e.content, e.snapshotter, func(ctx context.Context, name string) (ops.Ref, error) {
		return snaps.Load(ctx, name)
	})
	if e.cacheWriter, err = remote.WriterID(root); err != nil {
		return nil, err
	}
	e.cacheTmp = filepath.Join(root, "tmp", "cache")
	if err := os.RemoveAll(e.cacheTmp); err != nil {
		return nil, fmt.Errorf("clean %s: %w", e.cacheTmp, err)
	}
	remotes, exporters := opts.RemoteCaches, opts.CacheExporters
	for _, open := range []remote.SharedFunc{openShared, opts.Caches.Shared} {
		if open == nil {
			continue
		}
		shared, err := open(ctx, e.cacheDeps())
		if err != nil {
			return nil, err
		}
		for _, sc := range shared {
			e.closers = append(e.closers, sc.Close)
			remotes = append(remotes, sc)
			exporters = append(exporters, sc)
		}
		e.shared = append(e.shared, shared...)
	}
	src, err := sched.NewHostSource(executor.Steps())
	if err != nil {
		return nil, err
	}
	e.scheduler = sched.New(opts.Admission, src)
	e.solver = solver.New(w, e.cacheStore,
		solver.WithAdmission(e.scheduler),
		solver.WithRemoteCaches(remotes...),
		solver.WithExporters(exporters...))
	if e.history, err = history.Open(e.db); err != nil {
		return nil, err
	}
	e.allowed = opts.Allowed
	if opts.AllowInsecure {
		e.allowed = append(e.allowed, EntitlementSecurityInsecure)
	}
	if e.syntax, err = normalizeSyntax(opts.Syntax); err != nil {
		return nil, err
	}
	e.executor, e.snapshots = executor, snaps
	// Results gateway frontends read are mounted under the worker's state
	// directory, which the worker empties at start.
	e.mountDir = filepath.Join(root, "steps", "frontend")
	if err := os.MkdirAll(e.mountDir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", e.mountDir, err)
	}

	// The services the API edges call.
	e.images = images.New(images.Options{
		Content: e.content, Store: e.imageStore, Puller: e.puller, Resolver: e.resolver, TempDir: filepath.Join(root, "tmp"),
	})
	e.runs = run.New(run.Options{Images: e.images, Puller: e.puller, Snapshots: snaps, Executor: executor})
	collector, err := gc.New(gc.Config{
		Cache: e.cacheStore, Snapshotter: e.snapshotter, Content: e.content, Images: e.imageStore,
		InUse: snaps.InUse, Contexts: gcContexts{contexts}, CacheMounts: gcCacheMounts{cacheMounts},
	})
	if err != nil {
		return nil, err
	}
	_, free := disk.Space(root)
	e.disk = disk.New(collector, disk.Options{
		Shared: e.shared, CacheSize: opts.GC.CacheSize, Policies: opts.GC.Policies, FreeBytes: free, Logger: opts.Logger,
	})
	e.disk.Start()
	e.closers = append(e.closers, e.disk.Close)
	e.sharedCache = sharedcache.New(e.shared)
	return e, nil
}

// cacheDeps are what the engine gives remote cache backends (a build's
// add its session, output and credentials).
func (e *Engine) cacheDeps() remote.Deps {
	return remote.Deps{
		Importer: e.cacheImporter, Layers: e.layers, Local: remote.LocalBlobs(e.content, e.contentDir()),
		Resolver: e.resolver, Platform: e.platform, Writer: e.cacheWriter, Logger: e.log, TempDir: e.cacheTmp,
	}
}

// contentDir is the content store's directory (blobs are hard-linked from
// it into shared blob stores on the same file system).
func (e *Engine) contentDir() string { return filepath.Join(e.root, "content") }

// Close releases what Open opened, newest first.
func (e *Engine) Close() error {
	var errs []error
	for i := len(e.closers) - 1; i >= 0; i-- {
		errs = append(errs, e.closers[i]())
	}
	e.closers = nil
	return errors.Join(errs...)
}
