package daemon

import (
	"context"

	"google.golang.org/grpc"

	"github.com/kiln-build/kiln/api"
)

// service implements api.ControlServer on top of a Server.
type service struct {
	api.UnimplementedControlServer
	s *Server
}

var _ api.ControlServer = (*service)(nil)

func (v *service) Info(ctx context.Context, _ *api.InfoRequest) (*api.InfoResponse, error) {
	return v.s.info(), nil
}

func (v *service) Build(stream grpc.BidiStreamingServer[api.BuildClientMessage, api.BuildServerMessage]) error {
	if v.s.backend == nil {
		return unimplemented("Build")
	}
	return v.s.backend.Build(stream.Context(), stream)
}

func (v *service) DiskUsage(ctx context.Context, req *api.DiskUsageRequest) (*api.DiskUsageResponse, error) {
	du, ok := v.s.backend.(DiskUsager)
	if !ok {
		return nil, unimplemented("DiskUsage")
	}
	return du.DiskUsage(ctx, req)
}

func (v *service) Prune(req *api.PruneRequest, stream grpc.ServerStreamingServer[api.UsageRecord]) error {
	du, ok := v.s.backend.(DiskUsager)
	if !ok {
		return unimplemented("Prune")
	}
	return du.Prune(stream.Context(), req, stream.Send)
}

func (v *service) ListImages(ctx context.Context, req *api.ListImagesRequest) (*api.ListImagesResponse, error) {
	il, ok := v.s.backend.(ImageLister)
	if !ok {
		return nil, unimplemented("ListImages")
	}
	return il.ListImages(ctx, req)
}

func (v *service) History(ctx context.Context, req *api.HistoryRequest) (*api.HistoryResponse, error) {
	hl, ok := v.s.backend.(HistoryLister)
	if !ok {
		return nil, unimplemented("History")
	}
	return hl.History(ctx, req)
}
