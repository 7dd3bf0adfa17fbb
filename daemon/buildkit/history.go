package buildkit

import (
	"context"
	"time"

	controlapi "github.com/moby/buildkit/api/services/control"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kiln-build/kiln/engine"
)

// HistoryStore lists finished builds, newest first: all of them, or the
// one with ref.
type HistoryStore interface {
	List(ctx context.Context, ref string, limit int) ([]engine.BuildRecord, error)
}

// ListenBuildHistory sends the records of finished builds, then those of
// running builds as STARTED events; with EarlyExit it ends there, else it
// follows running builds until they complete. buildx probes the call to
// learn that the API exists, and reads a build's record after it.
func (c *control) ListenBuildHistory(req *controlapi.BuildHistoryRequest, stream grpc.ServerStreamingServer[controlapi.BuildHistoryEvent]) error {
	ctx := stream.Context()
	if !req.ActiveOnly && c.s.o.History != nil {
		recs, err := c.s.o.History.List(ctx, req.Ref, int(req.Limit))
		if err != nil {
			return err
		}
		for _, r := range recs {
			if err := stream.Send(&controlapi.BuildHistoryEvent{Type: controlapi.BuildHistoryEventType_COMPLETE, Record: historyRecord(r)}); err != nil {
				return err
			}
		}
	}
	var follow []*build
	for _, b := range c.s.builds.active() {
		if (req.Ref != "" && b.ref != req.Ref) || b.req.Internal {
			continue
		}
		rec := &controlapi.BuildHistoryRecord{Ref: b.ref, Frontend: b.req.Frontend, FrontendAttrs: b.req.FrontendAttrs, Exporters: b.req.Exporters, CreatedAt: timestamppb.New(b.created)}
		if err := stream.Send(&controlapi.BuildHistoryEvent{Type: controlapi.BuildHistoryEventType_STARTED, Record: rec}); err != nil {
			return err
		}
		follow = append(follow, b)
	}
	if req.EarlyExit {
		return nil
	}
	for _, b := range follow {
		select {
		case <-b.done:
		case <-ctx.Done():
			return nil
		}
		rec := &controlapi.BuildHistoryRecord{Ref: b.ref, Frontend: b.req.Frontend, CreatedAt: timestamppb.New(b.created), CompletedAt: timestamppb.New(b.finishedAt())}
		if b.err != nil {
			rec.Error = &spb.Status{Code: int32(codes.Unknown), Message: b.err.Error()}
		}
		if err := stream.Send(&controlapi.BuildHistoryEvent{Type: controlapi.BuildHistoryEventType_COMPLETE, Record: rec}); err != nil {
			return err
		}
	}
	<-ctx.Done()
	return nil
}

// UpdateBuildHistory accepts Finalize (records are final when a build
// ends); pinning and deleting records are not supported.
func (c *control) UpdateBuildHistory(_ context.Context, req *controlapi.UpdateBuildHistoryRequest) (*controlapi.UpdateBuildHistoryResponse, error) {
	switch {
	case req.Delete:
		return nil, unimplementedf("deleting build records (kilnd keeps the last %d builds)", 200)
	case req.Pinned:
		return nil, unimplementedf("pinning build records")
	}
	return &controlapi.UpdateBuildHistoryResponse{}, nil
}

func historyRecord(r engine.BuildRecord) *controlapi.BuildHistoryRecord {
	rec := &controlapi.BuildHistoryRecord{
		Ref: r.Ref, Frontend: frontendDockerfile, CreatedAt: timestamppb.New(r.Created),
		ExporterResponse: exporterResponse(r.ExporterResponse),
		NumCachedSteps:   int32(r.Cached), NumTotalSteps: int32(r.Steps), NumCompletedSteps: int32(r.Steps),
	}
	if !r.Completed.IsZero() {
		rec.CompletedAt = timestamppb.New(r.Completed)
	}
	if r.Target != "" || r.DockerfileName != "" {
		rec.FrontendAttrs = map[string]string{}
		if r.Target != "" {
			rec.FrontendAttrs["target"] = r.Target
		}
		if r.DockerfileName != "" {
			rec.FrontendAttrs["filename"] = r.DockerfileName
		}
	}
	if r.Error != "" {
		code := codes.Unknown
		if r.Status == "canceled" {
			code = codes.Canceled
		}
		rec.Error = &spb.Status{Code: int32(code), Message: r.Error}
	}
	return rec
}

var _ = time.Second
