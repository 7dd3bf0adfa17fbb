package sharedcache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/cache/remote"
	"github.com/kiln-build/kiln/core/errdefs"
)

// ErrNoSharedCache is the answer of a daemon whose kilnd.toml names no
// shared cache (errdefs.ErrFailedPrecondition class).
var ErrNoSharedCache = errdefs.WithClass(errdefs.ErrFailedPrecondition,
	errors.New("kilnd has no shared cache: add [[cache.registry]] to kilnd.toml"))

// Index is one shared cache's index.
type Index struct {
	// Cache is the cache's name, as progress names its hits ("redis").
	Cache string
	// Address is where the index is (a redis URL, password masked).
	Address string
}

// Record is one record of a shared cache index.
type Record struct {
	Cache   string // Index.Cache of its index
	Index   string // Index.Address of its index
	Key     digest.Digest
	Writer  string // the writing daemon's id
	Layers  int    // layers of the result's chain
	Size    int64  // bytes of those layer blobs
	Created time.Time
}

// Service lists the records of the daemon's shared caches.
type Service struct {
	caches []*remote.Shared
}

// New returns the service over caches (none: every call answers
// ErrNoSharedCache).
func New(caches []*remote.Shared) *Service { return &Service{caches: caches} }

// RecordsRequest selects records: every record, or those of one build's
// keys.
type RecordsRequest struct {
	Build string
}

// lister is one shared cache's index that can list its records.
type lister struct {
	Index
	l remote.Lister
}

// Records calls indexes with the indexes it reads, then record for each
// of their records (of req.Build's keys when it is set), as the indexes
// yield them. A daemon without a shared cache answers ErrNoSharedCache,
// one whose indexes cannot list records errdefs.ErrUnimplemented, an
// unknown build errdefs.ErrNotFound; ctx ending stops the listing with
// its cause.
func (s *Service) Records(ctx context.Context, req RecordsRequest, indexes func([]Index) error, record func(Record) error) error {
	if len(s.caches) == 0 {
		return ErrNoSharedCache
	}
	var ls []lister
	for _, sc := range s.caches {
		if l, ok := sc.Index().(remote.Lister); ok {
			ls = append(ls, lister{Index: Index{Cache: sc.Name(), Address: indexAddr(sc)}, l: l})
		}
	}
	if len(ls) == 0 {
		return errdefs.WithClass(errdefs.ErrUnimplemented,
			fmt.Errorf("kilnd's shared cache index (%s) cannot list its records", indexAddr(s.caches[0])))
	}
	head := make([]Index, len(ls))
	for i, x := range ls {
		head[i] = x.Index
	}
	if err := indexes(head); err != nil {
		return err
	}
	var notFound error
	found := false
	for _, x := range ls {
		var sendErr error
		err := x.l.List(ctx, req.Build, func(r remote.Record) error {
			if err := ctx.Err(); err != nil {
				return context.Cause(ctx)
			}
			if err := record(x.record(r)); err != nil {
				sendErr = err
				return err
			}
			return nil
		})
		switch {
		case err == nil:
			found = true
		case sendErr != nil:
			return sendErr
		case ctx.Err() != nil:
			return context.Cause(ctx)
		case req.Build != "" && errdefs.IsNotFound(err):
			// The build may be known to another index.
			if notFound == nil {
				notFound = err
			}
		default:
			return x.readError(err)
		}
	}
	if !found {
		return notFound
	}
	return nil
}

// readError explains an index that could not be read, naming where it is
// (the index's errors usually do already).
func (x lister) readError(err error) error {
	if strings.Contains(err.Error(), x.Address) {
		return fmt.Errorf("kilnd cannot read its shared cache index: %w", err)
	}
	return fmt.Errorf("kilnd cannot read its shared cache index %s: %w", x.Address, err)
}

func (x lister) record(r remote.Record) Record {
	return Record{
		Cache: x.Cache, Index: x.Address, Key: r.Key, Writer: r.Writer,
		Layers: len(r.Layers), Size: r.Size(), Created: r.Created,
	}
}

// indexAddr is where sc's index is, without password (a redis URL), or
// the cache's name for an index that does not say.
func indexAddr(sc *remote.Shared) string {
	if a := sc.IndexAddr(); a != "" {
		return a
	}
	return sc.Name()
}
