package engine

import (
	"log/slog"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	cachebolt "github.com/kiln-build/kiln/cache/bolt"
	"github.com/kiln-build/kiln/cache/remote"
	"github.com/kiln-build/kiln/content"
	"github.com/kiln-build/kiln/engine/disk"
	"github.com/kiln-build/kiln/engine/history"
	"github.com/kiln-build/kiln/engine/images"
	"github.com/kiln-build/kiln/engine/run"
	"github.com/kiln-build/kiln/engine/sharedcache"
	"github.com/kiln-build/kiln/executor"
	"github.com/kiln-build/kiln/exporter"
	"github.com/kiln-build/kiln/frontend"
	"github.com/kiln-build/kiln/imagestore"
	"github.com/kiln-build/kiln/layer"
	"github.com/kiln-build/kiln/ops"
	"github.com/kiln-build/kiln/registry"
	"github.com/kiln-build/kiln/snapshot"
	"github.com/kiln-build/kiln/solver"
	"github.com/kiln-build/kiln/source/image"
)

// The entitlements a build can ask for (kiln build --allow).
const (
	EntitlementNetworkHost      = "network.host"
	EntitlementSecurityInsecure = "security.insecure"
)

// Engine is a daemon's engine: it runs builds and holds the services of
// the API. It is safe for concurrent use. Open makes one; Close releases
// it.
type Engine struct {
	root      string
	log       *slog.Logger
	platform  ocispec.Platform
	allowed   []string
	frontends map[string]frontend.Frontend
	outputs   map[string]exporter.Factory
	backends  CacheBackends

	db            *bolt.DB
	content       content.Store
	snapshotter   *snapshot.Snapshotter
	cacheStore    *cachebolt.Store
	imageStore    *imagestore.Store
	puller        *image.Puller
	resolver      *registry.Resolver
	layers        *layer.Maker
	solver        *solver.Solver
	cacheImporter *remote.Importer
	cacheWriter   string
	cacheTmp      string
	shared        []*remote.Shared

	images      *images.Service
	runs        *run.Service
	disk        *disk.Service
	history     *history.Service
	sharedCache *sharedcache.Service
	running     *running

	// Frontends that build while they convert (gateway frontends) get a
	// bridge per build: syntax is the `# syntax=` policy; executor and
	// snapshots run frontend containers; mountDir holds the mounts of the
	// results they read.
	syntax    SyntaxPolicy
	executor  executor.Executor
	snapshots ops.Snapshots
	mountDir  string

	closers []func() error
}

// Images is the image service (kiln images, image rm|inspect|tag|import|
// push|save).
func (e *Engine) Images() *images.Service { return e.images }

// Runs is the service that runs containers from stored images (kiln run).
func (e *Engine) Runs() *run.Service { return e.runs }

// Disk is the disk usage and prune service (kiln du, kiln prune; the
// automatic gc runs after builds).
func (e *Engine) Disk() *disk.Service { return e.disk }

// History is the build history service (kiln history; builds start and
// finish records in it).
func (e *Engine) History() *history.Service { return e.history }

// CacheRecords is the service listing the shared caches' records (kiln
// cache ls --remote).
func (e *Engine) CacheRecords() *sharedcache.Service { return e.sharedCache }

// Snapshotter names the snapshotter the engine uses: overlayfs or native.
func (e *Engine) Snapshotter() string { return e.snapshotter.Kind() }

func defaultPlatform() ocispec.Platform { return platforms.DefaultSpec() }
