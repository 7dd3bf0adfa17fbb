package daemon

import (
	"context"

	"github.com/kiln-build/kiln/api"
)

// BuildStream is one build's bidirectional stream as a Backend sees it:
// the first message received is the api.BuildRequest; the daemon-side
// messages (sync and file requests, secret requests, progress, the result)
// go out with Send. The gRPC stream satisfies it. Send is not safe for
// concurrent use; a backend that sends from several goroutines serialises
// its calls.
type BuildStream interface {
	Send(*api.BuildServerMessage) error
	Recv() (*api.BuildClientMessage, error)
}

// Backend runs builds. It is the engine, as cmd/kilnd wires it:
//
//	srv, err := daemon.New(cfg, daemon.WithBackend(engine))
//
// Build returns when the build is finished, failed or canceled; ctx is
// canceled when the client goes away or the daemon shuts down. Errors
// should carry a core/errdefs class (errdefs.Invalidf for a bad
// Dockerfile, errdefs.ErrNotFound for a missing image, ...) so the client
// sees the right code.
//
// A backend may also implement any of DiskUsager, ImageLister,
// HistoryLister, ImageManager, Runner and CacheLister; the daemon finds
// them by type assertion, and the RPCs of the ones it lacks answer
// Unimplemented.
type Backend interface {
	Build(ctx context.Context, s BuildStream) error
}

// DiskUsager reports and prunes what the daemon stores.
type DiskUsager interface {
	DiskUsage(ctx context.Context, req *api.DiskUsageRequest) (*api.DiskUsageResponse, error)
	// Prune removes what req selects, calling send for each removed record.
	Prune(ctx context.Context, req *api.PruneRequest, send func(*api.UsageRecord) error) error
}

// ImageLister lists the local image store.
type ImageLister interface {
	ListImages(ctx context.Context, req *api.ListImagesRequest) (*api.ListImagesResponse, error)
}

// HistoryLister lists finished builds.
type HistoryLister interface {
	History(ctx context.Context, req *api.HistoryRequest) (*api.HistoryResponse, error)
}

// ImageManager handles the local image commands (kiln image rm, inspect,
// tag, import, push, save).
type ImageManager interface {
	RemoveImages(ctx context.Context, req *api.RemoveImagesRequest) (*api.RemoveImagesResponse, error)
	InspectImage(ctx context.Context, req *api.InspectImageRequest) (*api.InspectImageResponse, error)
	TagImage(ctx context.Context, req *api.TagImageRequest) (*api.TagImageResponse, error)
	// ImportImage reads the header and then the file from s until it
	// ends.
	ImportImage(ctx context.Context, s ImportStream) (*api.ImportImageResponse, error)
	PushImage(ctx context.Context, req *api.PushImageRequest) (*api.PushImageResponse, error)
	// SaveImage writes the tarball through send, in order.
	SaveImage(ctx context.Context, req *api.SaveImageRequest, send func(*api.SaveImageChunk) error) error
}

// ImportStream is the client side of an ImportImage call as the backend
// sees it: Recv returns io.EOF after the last chunk.
type ImportStream interface {
	Recv() (*api.ImportImageMessage, error)
}

// Runner runs containers from stored images (kiln run).
type Runner interface {
	// Run reads the RunRequest from s, runs the container and sends its
	// output and, last, its exit status. ctx ends when the client goes.
	Run(ctx context.Context, s RunStream) error
}

// RunStream is one Run call's stream. Send is not safe for concurrent use.
type RunStream interface {
	Send(*api.RunServerMessage) error
	Recv() (*api.RunClientMessage, error)
}

// CacheLister lists the records of the daemon's shared caches (kiln cache
// ls --remote).
type CacheLister interface {
	// CacheRecords sends the indexes it reads first, then one message per
	// record: every record, or those of req.Build's keys. A daemon
	// without a shared cache answers in the errdefs.ErrFailedPrecondition
	// class, an unknown build in errdefs.ErrNotFound.
	CacheRecords(ctx context.Context, req *api.CacheRecordsRequest, send func(*api.CacheRecordsMessage) error) error
}
