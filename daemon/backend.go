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
// A backend may also implement any of DiskUsager, ImageLister and
// HistoryLister; the daemon finds them by type assertion, and the RPCs of
// the ones it lacks answer Unimplemented.
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
