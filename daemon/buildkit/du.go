package buildkit

import (
	"context"

	controlapi "github.com/moby/buildkit/api/services/control"
	"google.golang.org/grpc"
)

// Usage reports and prunes what the daemon stores, in BuildKit's terms
// (buildx du, buildx prune).
type Usage interface {
	DiskUsage(ctx context.Context, req *controlapi.DiskUsageRequest) (*controlapi.DiskUsageResponse, error)
	Prune(ctx context.Context, req *controlapi.PruneRequest, send func(*controlapi.UsageRecord) error) error
}

// DiskUsage reports the build cache's records.
func (c *control) DiskUsage(ctx context.Context, req *controlapi.DiskUsageRequest) (*controlapi.DiskUsageResponse, error) {
	if c.s.o.Usage == nil {
		return nil, unimplementedf("disk usage through BuildKit's API in this kilnd: use kiln du")
	}
	return c.s.o.Usage.DiskUsage(ctx, req)
}

// Prune removes build cache records as the request selects.
func (c *control) Prune(req *controlapi.PruneRequest, stream grpc.ServerStreamingServer[controlapi.UsageRecord]) error {
	if c.s.o.Usage == nil {
		return unimplementedf("pruning through BuildKit's API in this kilnd: use kiln prune")
	}
	return c.s.o.Usage.Prune(stream.Context(), req, stream.Send)
}
