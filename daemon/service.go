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

func (v *service) imageManager(what string) (ImageManager, error) {
	im, ok := v.s.backend.(ImageManager)
	if !ok {
		return nil, unimplemented(what)
	}
	return im, nil
}

func (v *service) RemoveImages(ctx context.Context, req *api.RemoveImagesRequest) (*api.RemoveImagesResponse, error) {
	im, err := v.imageManager("RemoveImages")
	if err != nil {
		return nil, err
	}
	return im.RemoveImages(ctx, req)
}

func (v *service) InspectImage(ctx context.Context, req *api.InspectImageRequest) (*api.InspectImageResponse, error) {
	im, err := v.imageManager("InspectImage")
	if err != nil {
		return nil, err
	}
	return im.InspectImage(ctx, req)
}

func (v *service) TagImage(ctx context.Context, req *api.TagImageRequest) (*api.TagImageResponse, error) {
	im, err := v.imageManager("TagImage")
	if err != nil {
		return nil, err
	}
	return im.TagImage(ctx, req)
}

func (v *service) ImportImage(stream grpc.ClientStreamingServer[api.ImportImageMessage, api.ImportImageResponse]) error {
	im, err := v.imageManager("ImportImage")
	if err != nil {
		return err
	}
	resp, err := im.ImportImage(stream.Context(), stream)
	if err != nil {
		return err
	}
	return stream.SendAndClose(resp)
}

func (v *service) PushImage(ctx context.Context, req *api.PushImageRequest) (*api.PushImageResponse, error) {
	im, err := v.imageManager("PushImage")
	if err != nil {
		return nil, err
	}
	return im.PushImage(ctx, req)
}

func (v *service) SaveImage(req *api.SaveImageRequest, stream grpc.ServerStreamingServer[api.SaveImageChunk]) error {
	im, err := v.imageManager("SaveImage")
	if err != nil {
		return err
	}
	return im.SaveImage(stream.Context(), req, stream.Send)
}

func (v *service) Run(stream grpc.BidiStreamingServer[api.RunClientMessage, api.RunServerMessage]) error {
	r, ok := v.s.backend.(Runner)
	if !ok {
		return unimplemented("Run")
	}
	return r.Run(stream.Context(), stream)
}

func (v *service) CacheRecords(req *api.CacheRecordsRequest, stream grpc.ServerStreamingServer[api.CacheRecordsMessage]) error {
	cl, ok := v.s.backend.(CacheLister)
	if !ok {
		return unimplemented("CacheRecords")
	}
	return cl.CacheRecords(stream.Context(), req, stream.Send)
}
