package disk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/kiln-build/kiln/cache/remote"
	"github.com/kiln-build/kiln/config"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/gc"
)

// TypeShared is the Record type of a shared cache.
const TypeShared = "shared"

// Record is one thing the daemon stores (a cache record, snapshot, blob,
// cache mount or kept context: gc.Item), or one shared cache
// (TypeShared: Size is its blob store's, InUse says it has writes
// pending).
type Record struct {
	gc.Item
	// UsageCount is a shared cache's record count.
	UsageCount int64
	// PendingWrites are a shared cache's steps still being written.
	PendingWrites int64
}

// Options configure a Service.
type Options struct {
	// Shared are the daemon-wide shared caches; Usage reports them apart.
	Shared []*remote.Shared
	// CacheSize, when positive, makes the automatic gc keep the build
	// cache under this many bytes; Policies, when set, are applied in order
	// instead.
	CacheSize int64
	Policies  []gc.Policy
	// FreeBytes reads the free space of the root's file system, for
	// PruneRequest.MinFreeBytes (see Space).
	FreeBytes func() (int64, error)
	Logger    *slog.Logger
}

// Service reports and prunes the daemon's storage. It is safe for
// concurrent use; prunes (asked for or automatic) run one at a time.
type Service struct {
	gc  *gc.Collector
	o   Options
	log *slog.Logger

	auto *passes // the automatic gc

	runs, removed, removedBytes atomic.Int64 // GCStats
}

// GCStats counts the prunes since the service was made: automatic gc
// runs and asked-for prunes, and what they removed.
type GCStats struct {
	Runs, Removed, RemovedBytes int64
}

// GCStats returns the counters.
func (s *Service) GCStats() GCStats {
	return GCStats{Runs: s.runs.Load(), Removed: s.removed.Load(), RemovedBytes: s.removedBytes.Load()}
}

// count records a prune's removed item.
func (s *Service) count(it gc.Item) {
	s.removed.Add(1)
	s.removedBytes.Add(it.Size)
}

// New returns the service over c.
func New(c *gc.Collector, o Options) *Service {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{gc: c, o: o, log: log}
	s.auto = newPasses(s.gcPass)
	return s
}

// UsageRequest selects what Usage reports.
type UsageRequest struct {
	// Filters are not supported yet; giving any is an error.
	Filters []string
}

// Usage reports one record per cache record, snapshot no record names,
// blob, cache mount and kept context (gc.Collector.Usage), then one per
// shared cache. A shared cache that cannot be read (its index is down) is
// reported with what could be counted; the error is logged.
func (s *Service) Usage(ctx context.Context, req UsageRequest) ([]Record, error) {
	if len(req.Filters) > 0 {
		return nil, errdefs.Invalidf("kiln du: filters are not supported yet")
	}
	items, err := s.gc.Usage(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Record, 0, len(items)+len(s.o.Shared))
	for _, it := range items {
		out = append(out, Record{Item: it})
	}
	// The shared caches are counted apart: their blobs live outside the
	// root and other daemons use them too.
	for _, sc := range s.o.Shared {
		u, err := sc.Usage(ctx)
		if err != nil {
			s.log.Warn("shared cache usage", slog.Any("error", fmt.Errorf("shared cache %s: %w", u.Index, err)))
		}
		out = append(out, Record{
			Item: gc.Item{
				ID: u.Name + " " + u.Index, Type: TypeShared, Size: u.BlobBytes, Shared: true, InUse: u.Pending > 0,
				Description: fmt.Sprintf("%s index at %s: %d keys, %d records; blob store: %d blobs", u.Name, u.Index, u.Keys, u.Records, u.Blobs),
			},
			UsageCount: u.Records, PendingWrites: u.Pending,
		})
	}
	return out, nil
}

// PruneRequest selects what Prune removes (kiln prune's flags).
type PruneRequest struct {
	// All removes the records of pulled base image layers too.
	All bool
	// KeepDuration keeps what was used within this long (0: no limit).
	KeepDuration time.Duration
	// KeepBytes, if positive, prunes least recently used first until the
	// cache is at most this big (buildctl's --max-used-space).
	KeepBytes int64
	// ReservedBytes: a size-bound prune never goes below this total
	// (--reserved-space).
	ReservedBytes int64
	// MinFreeBytes prunes until the root's file system has this much free
	// space (--min-free-space).
	MinFreeBytes int64
	// Filters limit the prune to kinds: "type==regular",
	// "type==exec.cachemount", "type==source.local" ...
	Filters []string
}

// Prune removes what req selects (see gc.Policy) and calls removed for
// each removed record. An error from removed stops the prune.
func (s *Service) Prune(ctx context.Context, req PruneRequest, removed func(Record) error) error {
	var types []string
	for _, f := range req.Filters {
		typ, err := config.GCFilterType(f)
		if err != nil {
			return errdefs.Invalidf("kiln prune --filter: %v", err)
		}
		types = append(types, typ)
	}
	if req.KeepDuration < 0 || req.KeepBytes < 0 {
		return errdefs.Invalidf("kiln prune: --keep-duration and --keep-storage must not be negative")
	}
	if req.ReservedBytes < 0 || req.MinFreeBytes < 0 {
		return errdefs.Invalidf("prune: the reserved and minimum free space must not be negative")
	}
	p := gc.Policy{
		All: req.All, KeepDuration: req.KeepDuration, KeepBytes: req.KeepBytes, Types: types,
		ReservedBytes: req.ReservedBytes, MinFreeBytes: req.MinFreeBytes,
	}
	if p.MinFreeBytes > 0 {
		if s.o.FreeBytes == nil {
			return errdefs.WithClass(errdefs.ErrUnimplemented, errors.New("prune: this kilnd cannot read its free disk space"))
		}
		p.FreeBytes = s.o.FreeBytes
	}
	s.runs.Add(1)
	return s.gc.Prune(ctx, p, func(it gc.Item) error { s.count(it); return removed(Record{Item: it}) })
}

// Policies returns the automatic gc's policies, in order: the configured
// ones, or one keeping the cache under CacheSize; none when it is off.
func (s *Service) Policies() []gc.Policy {
	if len(s.o.Policies) > 0 {
		return s.o.Policies
	}
	if s.o.CacheSize > 0 {
		return []gc.Policy{{KeepBytes: s.o.CacheSize, KeepContexts: true}}
	}
	return nil
}

// Interval is the time-based trigger of the automatic gc: a pass this
// often besides the one after every build.
const Interval = time.Minute

// autoGCTimeout bounds one automatic gc pass.
const autoGCTimeout = 10 * time.Minute

// Start starts the time-based trigger of the automatic gc: a pass every
// Interval, which applies KeepDuration and free-space policies while no
// build runs. Close stops it.
func (s *Service) Start() {
	if len(s.Policies()) > 0 {
		s.auto.every(Interval)
	}
}

// Close stops the automatic gc: a pass running is canceled and waited for.
func (s *Service) Close() error {
	s.auto.stop()
	return nil
}

// AfterBuild applies the automatic gc's policies after a build, so that
// the cache is back under cache-size when the build's client hears it
// ended: it asks for a pass and waits until one that started after the
// call has ended, or ctx ends. Passes never overlap and builds that end
// while one runs share the next one; what running builds hold is never
// removed (gc.Collector).
func (s *Service) AfterBuild(ctx context.Context) {
	if len(s.Policies()) == 0 {
		return
	}
	select {
	case <-s.auto.Request():
	case <-ctx.Done():
	}
}

// gcPass applies the policies in order once.
func (s *Service) gcPass(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, autoGCTimeout)
	defer cancel()
	for i, p := range s.Policies() {
		n := 0
		s.runs.Add(1)
		err := s.gc.Prune(ctx, p, func(it gc.Item) error { n++; s.count(it); return nil })
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("automatic gc", slog.Int("policy", i+1), slog.Any("error", err))
			}
			return
		}
		if n > 0 {
			s.log.Info("automatic gc", slog.Int("policy", i+1), slog.Int("removed", n))
		}
	}
}
