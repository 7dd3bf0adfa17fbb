package buildkit

import (
	"context"
	"slices"
	"strings"
	"time"

	controlapi "github.com/moby/buildkit/api/services/control"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kiln-build/kiln/config"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/engine/disk"
)

// Disk reports and prunes what the daemon stores (*disk.Service).
type Disk interface {
	Usage(ctx context.Context, req disk.UsageRequest) ([]disk.Record, error)
	Prune(ctx context.Context, req disk.PruneRequest, removed func(disk.Record) error) error
}

// DiskUsage lists what the daemon stores, as buildx du shows it.
func (c *control) DiskUsage(ctx context.Context, req *controlapi.DiskUsageRequest) (*controlapi.DiskUsageResponse, error) {
	if c.s.o.Disk == nil {
		return nil, unimplementedf("disk usage through BuildKit's API in this kilnd: use kiln du")
	}
	types, until, err := usageFilters(req.Filter)
	if err != nil {
		return nil, err
	}
	if age := time.Duration(req.AgeLimit); age > until {
		until = age
	}
	recs, err := c.s.o.Disk.Usage(ctx, disk.UsageRequest{})
	if err != nil {
		return nil, err
	}
	resp := &controlapi.DiskUsageResponse{}
	for _, r := range recs {
		if (len(types) > 0 && !slices.Contains(types, r.Type)) || (until > 0 && time.Since(lastUse(r)) < until) {
			continue
		}
		resp.Record = append(resp.Record, usageRecord(r))
	}
	return resp, nil
}

// Prune removes what the request selects, reporting each removed record.
func (c *control) Prune(req *controlapi.PruneRequest, stream grpc.ServerStreamingServer[controlapi.UsageRecord]) error {
	if c.s.o.Disk == nil {
		return unimplementedf("pruning through BuildKit's API in this kilnd: use kiln prune")
	}
	types, until, err := usageFilters(req.Filter)
	if err != nil {
		return err
	}
	p := disk.PruneRequest{
		All: req.All, KeepDuration: max(time.Duration(req.KeepDuration), until), KeepBytes: req.MaxUsedSpace,
		ReservedBytes: req.ReservedSpace, MinFreeBytes: req.MinFreeSpace,
	}
	for _, t := range types {
		p.Filters = append(p.Filters, "type=="+t)
	}
	return c.s.o.Disk.Prune(stream.Context(), p, func(r disk.Record) error { return stream.Send(usageRecord(r)) })
}

// usageFilters reads buildx's --filter values: type==KIND and
// until=DURATION (comma-separated within one value, containerd style).
func usageFilters(filters []string) (types []string, until time.Duration, err error) {
	for _, f := range splitList(strings.Join(filters, ",")) {
		if v, ok := strings.CutPrefix(f, "until="); ok {
			if until, err = time.ParseDuration(v); err != nil {
				return nil, 0, errdefs.Invalidf("filter %q: %v", f, err)
			}
			continue
		}
		typ, err := config.GCFilterType(f)
		if err != nil {
			return nil, 0, errdefs.Invalidf("%v", err)
		}
		types = append(types, typ)
	}
	return types, until, nil
}

func usageRecord(r disk.Record) *controlapi.UsageRecord {
	out := &controlapi.UsageRecord{
		ID: r.ID, RecordType: r.Type, Size: r.Size, InUse: r.InUse, Shared: r.Shared,
		Description: r.Description, Parents: r.Parents, UsageCount: r.UsageCount,
	}
	if !r.Created.IsZero() {
		out.CreatedAt = timestamppb.New(r.Created)
	}
	if !r.LastUsed.IsZero() {
		out.LastUsedAt = timestamppb.New(r.LastUsed)
		if out.UsageCount == 0 {
			out.UsageCount = 1
		}
	}
	return out
}

func lastUse(r disk.Record) time.Time {
	if !r.LastUsed.IsZero() {
		return r.LastUsed
	}
	return r.Created
}
