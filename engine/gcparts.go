package engine

import (
	"context"
	"time"

	"github.com/kiln-build/kiln/gc"
	"github.com/kiln-build/kiln/ops/exec"
	"github.com/kiln-build/kiln/source/local"
)

// gcContexts shows the kept build contexts to gc in its own terms.
type gcContexts struct{ s *local.Store }

func (c gcContexts) Kept(ctx context.Context) ([]gc.Context, error) {
	kept, err := c.s.Kept(ctx)
	out := make([]gc.Context, 0, len(kept))
	for _, k := range kept {
		out = append(out, gcContext(k))
	}
	return out, err
}

func (c gcContexts) Prune(ctx context.Context, unusedSince time.Time, removed func(gc.Context) error) error {
	return c.s.Prune(ctx, unusedSince, func(k local.Kept) error { return removed(gcContext(k)) })
}

func gcContext(k local.Kept) gc.Context {
	return gc.Context{Dir: k.Dir, Path: k.Key.Path, Name: k.Key.Name, Size: k.Size, LastUsed: k.LastUsed, InUse: k.InUse}
}

// gcCacheMounts shows the cache mounts to gc in its own terms.
type gcCacheMounts struct{ m *exec.CacheMounts }

func (c gcCacheMounts) List(ctx context.Context) ([]gc.CacheMount, error) {
	infos, err := c.m.List(ctx)
	out := make([]gc.CacheMount, 0, len(infos))
	for _, i := range infos {
		out = append(out, gc.CacheMount{
			Name: i.Name, ID: i.ID, Instance: i.Instance, Size: i.Size, Created: i.Created, LastUsed: i.LastUsed, InUse: i.InUse,
		})
	}
	return out, err
}

func (c gcCacheMounts) Remove(ctx context.Context, name string) error { return c.m.Remove(ctx, name) }
