package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kiln-build/kiln/api"
	"github.com/kiln-build/kiln/config"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/engine"
	"github.com/kiln-build/kiln/gc"
)

var _ DiskUsager = (*BuildBackend)(nil)

// collector returns the garbage collector over the engine's storage, one
// per backend so that prunes (asked for or automatic) run one at a time.
func (b *BuildBackend) collector() (*gc.Collector, error) {
	b.gcOnce.Do(func() { b.gc, b.gcErr = b.newCollector() })
	return b.gc, b.gcErr
}

func (b *BuildBackend) newCollector() (*gc.Collector, error) {
	p := b.parts
	c := gc.Config{
		Cache: p.CacheStore, Snapshotter: p.Snapshotter, Content: p.Content, Images: p.Images,
		Logger: slog.New(slog.DiscardHandler),
	}
	if p.Snapshots != nil {
		c.InUse = p.Snapshots.InUse
	}
	if p.Contexts != nil {
		c.Contexts = p.Contexts
	}
	if p.CacheMounts != nil {
		c.CacheMounts = p.CacheMounts
	}
	return gc.New(c)
}

// DiskUsage implements DiskUsager: one record per cache record, snapshot
// no record names, blob, cache mount and kept context (gc.Usage). Shared
// marks what something else needs too (a stored image, another record), so
// that pruning it alone frees nothing.
func (b *BuildBackend) DiskUsage(ctx context.Context, req *api.DiskUsageRequest) (*api.DiskUsageResponse, error) {
	if err := b.checkParts("DiskUsage"); err != nil {
		return nil, err
	}
	if len(req.GetFilters()) > 0 {
		return nil, errdefs.Invalidf("kiln du: filters are not supported yet")
	}
	c, err := b.collector()
	if err != nil {
		return nil, err
	}
	items, err := c.Usage(ctx)
	if err != nil {
		return nil, err
	}
	resp := &api.DiskUsageResponse{}
	for _, it := range items {
		resp.Records = append(resp.Records, usageRecord(it))
	}
	// The shared caches are counted apart: their blobs live outside the
	// root and other daemons use them too.
	shared, err := engine.SharedUsage(ctx, b.parts)
	if err != nil {
		b.log.Warn("shared cache usage", slog.Any("error", err))
	}
	for _, u := range shared {
		resp.Records = append(resp.Records, &api.UsageRecord{
			Id: u.Name + " " + u.Index, Type: "shared", Size: u.BlobBytes, Shared: true,
			UsageCount: u.Records, PendingWrites: u.Pending, InUse: u.Pending > 0,
			Description: fmt.Sprintf("%s index at %s: %d keys, %d records; blob store: %d blobs", u.Name, u.Index, u.Keys, u.Records, u.Blobs),
		})
	}
	return resp, nil
}

// Prune implements DiskUsager with gc.Prune: --all, --keep-duration and
// --keep-storage map to the policy.
func (b *BuildBackend) Prune(ctx context.Context, req *api.PruneRequest, send func(*api.UsageRecord) error) error {
	if err := b.checkParts("Prune"); err != nil {
		return err
	}
	var types []string
	for _, f := range req.GetFilters() {
		typ, err := config.GCFilterType(f)
		if err != nil {
			return errdefs.Invalidf("kiln prune --filter: %v", err)
		}
		types = append(types, typ)
	}
	if req.GetKeepDurationNs() < 0 || req.GetKeepBytes() < 0 {
		return errdefs.Invalidf("kiln prune: --keep-duration and --keep-storage must not be negative")
	}
	c, err := b.collector()
	if err != nil {
		return err
	}
	p := gc.Policy{All: req.GetAll(), KeepDuration: time.Duration(req.GetKeepDurationNs()), KeepBytes: req.GetKeepBytes(), Types: types}
	return c.Prune(ctx, p, func(it gc.Item) error { return send(usageRecord(it)) })
}

func usageRecord(it gc.Item) *api.UsageRecord {
	r := &api.UsageRecord{
		Id: it.ID, Type: it.Type, Size: it.Size, InUse: it.InUse, Shared: it.Shared,
		Description: it.Description, Parents: it.Parents,
	}
	if !it.Created.IsZero() {
		r.Created = timestamppb.New(it.Created)
	}
	if !it.LastUsed.IsZero() {
		r.LastUsed = timestamppb.New(it.LastUsed)
	}
	return r
}

// Usage lists what the daemon stores (gc.Usage), for the BuildKit API's
// DiskUsage.
func (b *BuildBackend) Usage(ctx context.Context) ([]gc.Item, error) {
	if err := b.checkParts("DiskUsage"); err != nil {
		return nil, err
	}
	c, err := b.collector()
	if err != nil {
		return nil, err
	}
	return c.Usage(ctx)
}

// PruneItems prunes by policy with the backend's collector (one prune at
// a time), for the BuildKit API's Prune.
func (b *BuildBackend) PruneItems(ctx context.Context, p gc.Policy, removed func(gc.Item) error) error {
	if err := b.checkParts("Prune"); err != nil {
		return err
	}
	c, err := b.collector()
	if err != nil {
		return err
	}
	return c.Prune(ctx, p, removed)
}

// AfterBuild runs what follows a build that ran outside the Build stream
// (one of BuildKit's clients): the automatic gc.
func (b *BuildBackend) AfterBuild() { b.autoGC() }

// autoGCInterval is the least time between two automatic gc runs.
const autoGCInterval = time.Minute

// autoGC applies the gc policies (or, without any, keeps the build cache
// under the configured cache size) after a build, in the background (at
// most one run at a time).
func (b *BuildBackend) autoGC() {
	policies := b.gcPolicies
	if len(policies) == 0 && b.cacheSize > 0 {
		policies = []gc.Policy{{KeepBytes: b.cacheSize, KeepContexts: true}}
	}
	if len(policies) == 0 || b.parts == nil || !b.gcRunning.CompareAndSwap(false, true) {
		return
	}
	// A scan of the whole cache after every build would tax quick
	// rebuilds: run at most once a minute.
	if last := b.gcLast.Load(); last != 0 && time.Since(time.Unix(0, last)) < autoGCInterval {
		b.gcRunning.Store(false)
		return
	}
	b.gcLast.Store(time.Now().UnixNano())
	go func() {
		defer b.gcRunning.Store(false)
		c, err := b.collector()
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		for i, p := range policies {
			n := 0
			err := c.Prune(ctx, p, func(gc.Item) error { n++; return nil })
			if err != nil {
				b.log.Warn("automatic gc", slog.Int("policy", i+1), slog.Any("error", err))
				return
			}
			if n > 0 {
				b.log.Info("automatic gc", slog.Int("policy", i+1), slog.Int("removed", n))
			}
		}
	}()
}
