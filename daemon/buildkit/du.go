package buildkit

import (
	"context"
	"strings"
	"time"

	controlapi "github.com/moby/buildkit/api/services/control"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kiln-build/kiln/config"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/gc"
)

// Usage reports and prunes what the daemon stores (the daemon's garbage
// collector: daemon.BuildBackend).
type Usage interface {
	Usage(ctx context.Context) ([]gc.Item, error)
	PruneItems(ctx context.Context, p gc.Policy, removed func(gc.Item) error) error
}

// DiskUsage lists what the daemon stores, as buildx du shows it.
func (c *control) DiskUsage(ctx context.Context, req *controlapi.DiskUsageRequest) (*controlapi.DiskUsageResponse, error) {
	if c.s.o.Usage == nil {
		return nil, unimplementedf("disk usage through BuildKit's API in this kilnd: use kiln du")
	}
	types, keep, err := usageFilters(req.Filter)
	if err != nil {
		return nil, err
	}
	items, err := c.s.o.Usage.Usage(ctx)
	if err != nil {
		return nil, err
	}
	resp := &controlapi.DiskUsageResponse{}
	for _, it := range items {
		if (len(types) > 0 && !contains(types, it.Type)) || (keep > 0 && time.Since(lastUse(it)) < keep) {
			continue
		}
		if req.AgeLimit > 0 && time.Since(lastUse(it)) < time.Duration(req.AgeLimit) {
			continue
		}
		resp.Record = append(resp.Record, usageRecord(it))
	}
	return resp, nil
}

// Prune removes what the request selects, reporting each removed item.
func (c *control) Prune(req *controlapi.PruneRequest, stream grpc.ServerStreamingServer[controlapi.UsageRecord]) error {
	if c.s.o.Usage == nil {
		return unimplementedf("pruning through BuildKit's API in this kilnd: use kiln prune")
	}
	if req.MinFreeSpace > 0 {
		return unimplementedf("pruning to a minimum free space (--min-free-space): use --max-used-space")
	}
	types, until, err := usageFilters(req.Filter)
	if err != nil {
		return err
	}
	p := gc.Policy{All: req.All, KeepDuration: time.Duration(req.KeepDuration), KeepBytes: req.MaxUsedSpace, ReservedBytes: req.ReservedSpace, Types: types}
	if until > p.KeepDuration {
		p.KeepDuration = until
	}
	return c.s.o.Usage.PruneItems(stream.Context(), p, func(it gc.Item) error { return stream.Send(usageRecord(it)) })
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

func usageRecord(it gc.Item) *controlapi.UsageRecord {
	r := &controlapi.UsageRecord{
		ID: it.ID, RecordType: it.Type, Size: it.Size, InUse: it.InUse, Shared: it.Shared,
		Description: it.Description, Parents: it.Parents,
	}
	if !it.Created.IsZero() {
		r.CreatedAt = timestamppb.New(it.Created)
	}
	if !it.LastUsed.IsZero() {
		r.LastUsedAt = timestamppb.New(it.LastUsed)
		r.UsageCount = 1
	}
	return r
}

func lastUse(it gc.Item) time.Time {
	if !it.LastUsed.IsZero() {
		return it.LastUsed
	}
	return it.Created
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
