package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kiln-build/kiln/api"
	"github.com/kiln-build/kiln/cache/remote"
	"github.com/kiln-build/kiln/core/errdefs"
)

var _ CacheLister = (*BuildBackend)(nil)

// errNoSharedCache is the answer of a daemon whose kilnd.toml names no
// shared cache.
var errNoSharedCache = errdefs.WithClass(errdefs.ErrFailedPrecondition,
	errors.New("kilnd has no shared cache: add [[cache.registry]] to kilnd.toml"))

// CacheRecords implements CacheLister over the engine's shared caches.
func (b *BuildBackend) CacheRecords(ctx context.Context, req *api.CacheRecordsRequest, send func(*api.CacheRecordsMessage) error) error {
	if err := b.checkParts("CacheRecords"); err != nil {
		return err
	}
	return listShared(ctx, b.parts.SharedCaches, req.GetBuild(), send)
}

// sharedIndex is one shared cache's index as CacheRecords reads it.
type sharedIndex struct {
	cache, addr string
	lister      remote.Lister
}

// listShared sends the indexes of caches that can list their records,
// then every record of each (of build's keys when build is not empty),
// one message per record, as the index yields them.
func listShared(ctx context.Context, caches []*remote.Shared, build string, send func(*api.CacheRecordsMessage) error) error {
	if len(caches) == 0 {
		return errNoSharedCache
	}
	var idx []sharedIndex
	for _, sc := range caches {
		if l, ok := sc.Index().(remote.Lister); ok {
			idx = append(idx, sharedIndex{cache: sc.Name(), addr: indexAddr(sc), lister: l})
		}
	}
	if len(idx) == 0 {
		return errdefs.WithClass(errdefs.ErrUnimplemented,
			fmt.Errorf("kilnd's shared cache index (%s) cannot list its records", indexAddr(caches[0])))
	}
	head := &api.CacheRecordsMessage{}
	for _, x := range idx {
		head.Indexes = append(head.Indexes, &api.CacheIndex{Cache: x.cache, Address: x.addr})
	}
	if err := send(head); err != nil {
		return err
	}
	var notFound error
	found := false
	for _, x := range idx {
		var sendErr error
		err := x.lister.List(ctx, build, func(r remote.Record) error {
			if err := ctx.Err(); err != nil {
				return context.Cause(ctx)
			}
			if err := send(&api.CacheRecordsMessage{Record: cacheRecord(x, r)}); err != nil {
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
		case build != "" && errdefs.IsNotFound(err):
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
func (x sharedIndex) readError(err error) error {
	if strings.Contains(err.Error(), x.addr) {
		return fmt.Errorf("kilnd cannot read its shared cache index: %w", err)
	}
	return fmt.Errorf("kilnd cannot read its shared cache index %s: %w", x.addr, err)
}

// indexAddr is where sc's index is, without password (a redis URL), or
// the cache's name for an index that does not say.
func indexAddr(sc *remote.Shared) string {
	if a := sc.IndexAddr(); a != "" {
		return a
	}
	return sc.Name()
}

func cacheRecord(x sharedIndex, r remote.Record) *api.CacheRecord {
	rec := &api.CacheRecord{
		Cache: x.cache, Index: x.addr, Key: r.Key.String(), Writer: r.Writer,
		Layers: int32(len(r.Layers)), Size: r.Size(),
	}
	if !r.Created.IsZero() {
		rec.Created = timestamppb.New(r.Created)
	}
	return rec
}
