package daemon

import (
	"context"
	"io"

	"github.com/kiln-build/kiln/api"
	"github.com/kiln-build/kiln/engine"
	"github.com/kiln-build/kiln/engine/disk"
	"github.com/kiln-build/kiln/engine/history"
	"github.com/kiln-build/kiln/engine/images"
	"github.com/kiln-build/kiln/engine/run"
	"github.com/kiln-build/kiln/engine/sharedcache"
	"github.com/kiln-build/kiln/progress"
	"github.com/kiln-build/kiln/session"
)

// Services are the engine's services the API serves: cmd/kilnd passes
// EngineServices(eng), tests pass fakes. The RPCs of a nil service answer
// Unimplemented. Their errors carry core/errdefs classes, which become
// gRPC codes here (errors.go).
type Services struct {
	Builds       Builder
	Images       ImageService
	Runs         RunService
	Disk         DiskService
	History      HistoryService
	CacheRecords CacheRecordService
}

// EngineServices returns the services of e.
func EngineServices(e *engine.Engine) Services {
	return Services{
		Builds: e, Images: e.Images(), Runs: e.Runs(), Disk: e.Disk(), History: e.History(), CacheRecords: e.CacheRecords(),
	}
}

// Builder runs builds (*engine.Engine). Build returns when the build is
// finished, failed or canceled; ctx is canceled when the client goes away
// or the daemon shuts down.
type Builder interface {
	Build(ctx context.Context, req engine.Request, sess session.Session, pw progress.Writer) (*engine.Result, error)
}

// ImageService runs the image commands (*images.Service).
type ImageService interface {
	List(ctx context.Context) ([]images.Image, error)
	Inspect(ctx context.Context, name string) (*images.Inspection, error)
	Tag(ctx context.Context, source, target string) (images.Image, error)
	Remove(ctx context.Context, names []string) (*images.RemoveResult, error)
	Push(ctx context.Context, req images.PushRequest) (*images.PushResult, error)
	Import(ctx context.Context, req images.ImportRequest, r io.Reader) (*images.ImportResult, error)
	Save(ctx context.Context, req images.SaveRequest, w io.Writer) error
}

// RunService runs containers from stored images (*run.Service).
type RunService interface {
	Run(ctx context.Context, req run.Request) (*run.Exit, error)
}

// DiskService reports and prunes what the daemon stores (*disk.Service).
type DiskService interface {
	Usage(ctx context.Context, req disk.UsageRequest) ([]disk.Record, error)
	Prune(ctx context.Context, req disk.PruneRequest, removed func(disk.Record) error) error
}

// HistoryService lists finished builds (*history.Service).
type HistoryService interface {
	List(ctx context.Context, f history.Filter) ([]history.Record, error)
}

// CacheRecordService lists the shared caches' records
// (*sharedcache.Service).
type CacheRecordService interface {
	Records(ctx context.Context, req sharedcache.RecordsRequest, indexes func([]sharedcache.Index) error, record func(sharedcache.Record) error) error
}

// BuildStream is one build's bidirectional stream as the daemon sees it:
// the first message received is the api.BuildRequest; the daemon-side
// messages (sync and file requests, secret requests, progress, the
// result) go out with Send. The gRPC stream satisfies it. Send is not
// safe for concurrent use; StreamSession serialises its calls.
type BuildStream interface {
	Send(*api.BuildServerMessage) error
	Recv() (*api.BuildClientMessage, error)
}
