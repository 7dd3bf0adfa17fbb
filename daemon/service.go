package daemon

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kiln-build/kiln/api"
	"github.com/kiln-build/kiln/engine/disk"
	"github.com/kiln-build/kiln/engine/history"
	"github.com/kiln-build/kiln/engine/sharedcache"
)

// service implements api.ControlServer on top of a Server: each RPC
// converts its request to the typed one of an engine service, calls it
// and converts the answer back. Errors become gRPC codes in the
// interceptors (errors.go).
type service struct {
	api.UnimplementedControlServer
	s *Server
}

var _ api.ControlServer = (*service)(nil)

func (v *service) Info(ctx context.Context, _ *api.InfoRequest) (*api.InfoResponse, error) {
	return v.s.info(), nil
}

func (v *service) Build(stream grpc.BidiStreamingServer[api.BuildClientMessage, api.BuildServerMessage]) error {
	if v.s.svc.Builds == nil {
		return unimplemented("Build")
	}
	return build(stream.Context(), v.s.svc.Builds, stream)
}

func (v *service) DiskUsage(ctx context.Context, req *api.DiskUsageRequest) (*api.DiskUsageResponse, error) {
	if v.s.svc.Disk == nil {
		return nil, unimplemented("DiskUsage")
	}
	recs, err := v.s.svc.Disk.Usage(ctx, disk.UsageRequest{Filters: req.GetFilters()})
	if err != nil {
		return nil, err
	}
	resp := &api.DiskUsageResponse{}
	for _, r := range recs {
		resp.Records = append(resp.Records, usageRecord(r))
	}
	return resp, nil
}

func (v *service) Prune(req *api.PruneRequest, stream grpc.ServerStreamingServer[api.UsageRecord]) error {
	if v.s.svc.Disk == nil {
		return unimplemented("Prune")
	}
	p := disk.PruneRequest{
		All: req.GetAll(), KeepDuration: time.Duration(req.GetKeepDurationNs()), KeepBytes: req.GetKeepBytes(), Filters: req.GetFilters(),
	}
	return v.s.svc.Disk.Prune(stream.Context(), p, func(r disk.Record) error { return stream.Send(usageRecord(r)) })
}

func usageRecord(r disk.Record) *api.UsageRecord {
	out := &api.UsageRecord{
		Id: r.ID, Type: r.Type, Size: r.Size, InUse: r.InUse, Shared: r.Shared,
		Description: r.Description, Parents: r.Parents, UsageCount: r.UsageCount, PendingWrites: r.PendingWrites,
	}
	out.Created, out.LastUsed = timestamp(r.Created), timestamp(r.LastUsed)
	return out
}

// timestamp is t on the wire; the zero time is no timestamp.
func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func (v *service) History(ctx context.Context, req *api.HistoryRequest) (*api.HistoryResponse, error) {
	if v.s.svc.History == nil {
		return nil, unimplemented("History")
	}
	recs, err := v.s.svc.History.List(ctx, history.Filter{Ref: req.GetRef(), Limit: int(req.GetLimit())})
	if err != nil {
		return nil, err
	}
	resp := &api.HistoryResponse{}
	for _, r := range recs {
		resp.Records = append(resp.Records, &api.BuildRecord{
			Ref: r.Ref, Created: timestamppb.New(r.Created), Completed: timestamppb.New(r.Completed),
			Status: r.Status, Error: r.Error, Steps: int32(r.Steps), Cached: int32(r.Cached),
			Target: r.Target, ExporterResponse: r.ExporterResponse, DockerfileName: r.DockerfileName,
		})
	}
	return resp, nil
}

func (v *service) CacheRecords(req *api.CacheRecordsRequest, stream grpc.ServerStreamingServer[api.CacheRecordsMessage]) error {
	if v.s.svc.CacheRecords == nil {
		return unimplemented("CacheRecords")
	}
	indexes := func(idx []sharedcache.Index) error {
		head := &api.CacheRecordsMessage{}
		for _, x := range idx {
			head.Indexes = append(head.Indexes, &api.CacheIndex{Cache: x.Cache, Address: x.Address})
		}
		return stream.Send(head)
	}
	record := func(r sharedcache.Record) error {
		return stream.Send(&api.CacheRecordsMessage{Record: &api.CacheRecord{
			Cache: r.Cache, Index: r.Index, Key: r.Key.String(), Writer: r.Writer,
			Layers: int32(r.Layers), Size: r.Size, Created: timestamp(r.Created),
		}})
	}
	return v.s.svc.CacheRecords.Records(stream.Context(), sharedcache.RecordsRequest{Build: req.GetBuild()}, indexes, record)
}
