package buildkit

import (
	"context"

	controlapi "github.com/moby/buildkit/api/services/control"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kiln-build/kiln/engine/history"
)

// History is the build history (*history.Service).
type History interface {
	Listen(ctx context.Context, o history.ListenOptions, send func(history.Event) error) error
	Update(ctx context.Context, ref string, u history.Update) error
}

// ListenBuildHistory sends the history's records (finished builds, the
// newest Limit of them if Limit is set, then running ones) and, unless EarlyExit, what happens next until the client
// goes. buildx probes the call to learn that the API exists, and reads a
// build's record after it.
func (c *control) ListenBuildHistory(req *controlapi.BuildHistoryRequest, stream grpc.ServerStreamingServer[controlapi.BuildHistoryEvent]) error {
	if c.s.o.History == nil {
		return unimplementedf("the build history in this kilnd")
	}
	ctx := stream.Context()
	err := c.s.o.History.Listen(ctx, history.ListenOptions{Ref: req.Ref, ActiveOnly: req.ActiveOnly, Follow: !req.EarlyExit, Limit: max(int(req.Limit), 0)}, func(ev history.Event) error {
		typ := controlapi.BuildHistoryEventType_COMPLETE
		switch ev.Type {
		case history.EventStarted:
			typ = controlapi.BuildHistoryEventType_STARTED
		case history.EventDeleted:
			typ = controlapi.BuildHistoryEventType_DELETED
		}
		return stream.Send(&controlapi.BuildHistoryEvent{Type: typ, Record: historyRecord(ev.Record)})
	})
	if err != nil && ctx.Err() != nil {
		return nil // the client went: a following listen ends so
	}
	return err
}

// UpdateBuildHistory pins, unpins or deletes a finished build's record;
// Finalize has nothing to do (records are final when a build ends).
func (c *control) UpdateBuildHistory(ctx context.Context, req *controlapi.UpdateBuildHistoryRequest) (*controlapi.UpdateBuildHistoryResponse, error) {
	if c.s.o.History == nil {
		return nil, unimplementedf("the build history in this kilnd")
	}
	if req.Finalize && !req.Delete && !req.Pinned {
		return &controlapi.UpdateBuildHistoryResponse{}, nil
	}
	u := history.Update{Delete: req.Delete}
	if !req.Delete {
		u.Pinned = &req.Pinned
	}
	if err := c.s.o.History.Update(ctx, req.Ref, u); err != nil {
		return nil, err
	}
	return &controlapi.UpdateBuildHistoryResponse{}, nil
}

func historyRecord(r history.Record) *controlapi.BuildHistoryRecord {
	rec := &controlapi.BuildHistoryRecord{
		Ref: r.Ref, Frontend: frontendDockerfile, CreatedAt: timestamppb.New(r.Created),
		ExporterResponse: exporterResponse(r.ExporterResponse), Pinned: r.Pinned,
		NumCachedSteps: int32(r.Cached), NumTotalSteps: int32(r.Steps), NumCompletedSteps: int32(r.Steps),
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
		if r.Status == history.StatusCanceled {
			code = codes.Canceled
		}
		rec.Error = &spb.Status{Code: int32(code), Message: r.Error}
	}
	return rec
}
