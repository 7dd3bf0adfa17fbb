package buildkit

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/containerd/platforms"
	controlapi "github.com/moby/buildkit/api/services/control"
	apitypes "github.com/moby/buildkit/api/types"
	gatewayapi "github.com/moby/buildkit/frontend/gateway/pb"
	"github.com/moby/buildkit/solver/pb"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/engine"
	"github.com/kiln-build/kiln/progress"
	"github.com/kiln-build/kiln/session"
)

// Engine runs builds and follows their progress: *engine.Engine.
type Engine interface {
	Build(ctx context.Context, req engine.Request, sess session.Session, pw progress.Writer) (*engine.Result, error)
	// Status writes build ref's progress from its start until it ends,
	// waiting for it to start.
	Status(ctx context.Context, ref string, w progress.Writer) error
}

// Worker describes kilnd's one worker to BuildKit's clients (ListWorkers;
// `buildx inspect` shows it).
type Worker struct {
	// ID is stable for a root (the daemon's cache writer id).
	ID string
	// Platforms are the native platform first, then the configured and
	// emulated (binfmt_misc) ones.
	Platforms []ocispec.Platform
	Labels    map[string]string
	GCPolicy  []GCPolicy
}

// pbPlatforms are the worker's platforms as BuildKit's records carry them.
func (w Worker) pbPlatforms() []*pb.Platform {
	out := make([]*pb.Platform, 0, len(w.Platforms))
	for _, p := range w.Platforms {
		out = append(out, &pb.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant})
	}
	return out
}

// GCPolicy is one automatic gc policy, as BuildKit describes it.
type GCPolicy struct {
	All           bool
	Filters       []string
	KeepDuration  time.Duration
	ReservedSpace int64
	MaxUsedSpace  int64
	MinFreeSpace  int64
}

// Options configure a Service.
type Options struct {
	Engine Engine
	Worker Worker
	// Version and Revision are kilnd's (Info's BuildkitVersion).
	Version, Revision string
	// ScratchDir holds short-lived files of the edge (the Dockerfile
	// synced from the client, a type=local output on its way back). It is
	// emptied by New.
	ScratchDir string
	// History is the build history (ListenBuildHistory,
	// UpdateBuildHistory); nil answers Unimplemented.
	History History
	// Disk reports and prunes disk usage (DiskUsage, Prune); nil answers
	// Unimplemented.
	Disk   Disk
	Logger *slog.Logger
}

// Service is BuildKit's API over an engine. Register it on kilnd's gRPC
// servers.
type Service struct {
	o        Options
	sessions *sessions
	solves   *solves
	bridge   *bridge
	peers    sync.Map // session id → peerID of its connection
}

// New returns the service.
func New(o Options) (*Service, error) {
	if o.Engine == nil {
		return nil, errdefs.Invalidf("buildkit: no engine")
	}
	if o.ScratchDir == "" {
		return nil, errdefs.Invalidf("buildkit: no scratch directory")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.RemoveAll(o.ScratchDir); err != nil {
		return nil, fmt.Errorf("buildkit: clean %s: %w", o.ScratchDir, err)
	}
	if err := os.MkdirAll(o.ScratchDir, 0o700); err != nil {
		return nil, fmt.Errorf("buildkit: %w", err)
	}
	s := &Service{o: o, sessions: newSessions(), solves: newSolves()}
	s.bridge = &bridge{s: s}
	return s, nil
}

// Register adds BuildKit's Control service and the gateway bridge to g.
func (s *Service) Register(g grpc.ServiceRegistrar) {
	controlapi.RegisterControlServer(g, &control{s: s})
	gatewayapi.RegisterLLBBridgeServer(g, s.bridge)
}

// control implements controlapi.ControlServer.
type control struct {
	controlapi.UnimplementedControlServer
	s *Service
}

var _ controlapi.ControlServer = (*control)(nil)

// ListWorkers describes the one worker. Filters are not applied: there is
// nothing to choose between.
func (c *control) ListWorkers(context.Context, *controlapi.ListWorkersRequest) (*controlapi.ListWorkersResponse, error) {
	w := c.s.o.Worker
	rec := &apitypes.WorkerRecord{ID: w.ID, Labels: w.Labels, BuildkitVersion: c.s.version(), Platforms: w.pbPlatforms()}
	for _, p := range w.GCPolicy {
		rec.GCPolicy = append(rec.GCPolicy, &apitypes.GCPolicy{
			All: p.All, Filters: p.Filters, KeepDuration: int64(p.KeepDuration),
			ReservedSpace: p.ReservedSpace, MaxUsedSpace: p.MaxUsedSpace, MinFreeSpace: p.MinFreeSpace,
		})
	}
	return &controlapi.ListWorkersResponse{Record: []*apitypes.WorkerRecord{rec}}, nil
}

// Info reports kilnd's version in BuildKit's terms.
func (c *control) Info(context.Context, *controlapi.InfoRequest) (*controlapi.InfoResponse, error) {
	return &controlapi.InfoResponse{BuildkitVersion: c.s.version()}, nil
}

func (s *Service) version() *apitypes.BuildkitVersion {
	return &apitypes.BuildkitVersion{Package: "github.com/kiln-build/kiln", Version: s.o.Version, Revision: s.o.Revision}
}

// Session hands the client's session stream to the session manager, which
// calls the client's services back over it until the client closes it.
func (c *control) Session(stream grpc.BidiStreamingServer[controlapi.BytesMessage, controlapi.BytesMessage]) error {
	return c.s.serveSession(stream)
}

// WorkerLabels are the labels BuildKit's OCI worker sets that describe
// kilnd too (buildx inspect prints them).
func WorkerLabels(hostname, snapshotter, network string) map[string]string {
	if network == "" || network == "auto" {
		network = "host"
	}
	return map[string]string{
		"org.mobyproject.buildkit.worker.executor":         "oci",
		"org.mobyproject.buildkit.worker.hostname":         hostname,
		"org.mobyproject.buildkit.worker.network":          network,
		"org.mobyproject.buildkit.worker.oci.process-mode": "sandbox",
		"org.mobyproject.buildkit.worker.snapshotter":      snapshotter,
		"org.mobyproject.buildkit.worker.kiln":             "true",
	}
}

// ParsePlatforms parses platform strings (native first), dropping
// duplicates.
func ParsePlatforms(list []string) ([]ocispec.Platform, error) {
	var out []ocispec.Platform
	seen := map[string]bool{}
	for _, s := range list {
		p, err := platforms.Parse(s)
		if err != nil {
			return nil, errdefs.Invalidf("platform %q: %v", s, err)
		}
		p = platforms.Normalize(p)
		if k := platforms.Format(p); !seen[k] {
			seen[k] = true
			out = append(out, p)
		}
	}
	return out, nil
}
