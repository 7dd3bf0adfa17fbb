package convert

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/containerd/platforms"
	"golang.org/x/sync/errgroup"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/core/imageconfig"
	"github.com/kiln-build/kiln/frontend"
)

// resolved is one image reference resolved for one platform.
type resolved struct {
	ref    string                  // pinned reference
	config imageconfig.DockerImage // parsed config; clone before changing
}

// resolveCache resolves each (reference, platform) once for the lifetime
// of a Converter, however many platforms and stages ask for it.
type resolveCache struct {
	r  frontend.ImageResolver
	mu sync.Mutex
	m  map[string]*resolveEntry
}

type resolveEntry struct {
	once sync.Once
	res  resolved
	err  error
}

func newResolveCache(r frontend.ImageResolver) *resolveCache {
	return &resolveCache{r: r, m: map[string]*resolveEntry{}}
}

func resolveKey(src source) string {
	return src.ref + "|" + platforms.FormatAll(src.plat)
}

// get resolves src (an image source), or returns the earlier answer.
func (c *resolveCache) get(ctx context.Context, src source) (resolved, error) {
	c.mu.Lock()
	e, ok := c.m[resolveKey(src)]
	if !ok {
		e = &resolveEntry{}
		c.m[resolveKey(src)] = e
	}
	c.mu.Unlock()
	e.once.Do(func() { e.res, e.err = c.resolve(ctx, src) })
	return e.res, e.err
}

// lookup returns the answer for src, which resolveAll resolved before.
func (c *resolveCache) lookup(src source) (resolved, error) {
	c.mu.Lock()
	e, ok := c.m[resolveKey(src)]
	c.mu.Unlock()
	if !ok {
		return resolved{}, errdefs.WithClass(errdefs.ErrInternal, fmt.Errorf("image %s for %s was not resolved before use", src.ref, platforms.FormatAll(src.plat)))
	}
	e.once.Do(func() { e.err = fmt.Errorf("image %s: resolution did not finish", src.ref) })
	return e.res, e.err
}

func (c *resolveCache) resolve(ctx context.Context, src source) (resolved, error) {
	if c.r == nil {
		return resolved{}, errdefs.Invalidf("cannot resolve %s: no image resolver is configured", src.ref)
	}
	ri, err := c.r.ResolveImageConfig(ctx, src.ref, src.plat)
	if err != nil {
		return resolved{}, err
	}
	res := resolved{ref: ri.Ref}
	if res.ref == "" {
		res.ref = src.ref
		if ri.Digest != "" {
			res.ref += "@" + ri.Digest.String()
		}
	}
	if len(ri.Config) > 0 {
		if err := json.Unmarshal(ri.Config, &res.config); err != nil {
			return resolved{}, errdefs.Invalidf("image %s has an invalid config: %v", src.ref, err)
		}
	}
	res.config.Created = nil
	if res.config.RootFS.Type == "" {
		res.config.RootFS.Type = "layers"
	}
	return res, nil
}

// resolveAll resolves every image source in srcs, concurrently, each once.
// An error is placed at the line that asked for the image and suggests a
// stage whose name is close to the one written.
func (c *resolveCache) resolveAll(ctx context.Context, srcs []source, stages []*stage) error {
	seen := map[string]bool{}
	g, gctx := errgroup.WithContext(ctx)
	for _, src := range srcs {
		if src.kind != srcImage || seen[resolveKey(src)] {
			continue
		}
		seen[resolveKey(src)] = true
		g.Go(func() error {
			_, err := c.get(gctx, src)
			if err == nil {
				return nil
			}
			err = fmt.Errorf("resolve image %s for %s: %w", src.ref, platforms.FormatAll(src.plat), err)
			hint := stageHint(stages, src.name)
			switch {
			case src.what == "" || src.what == "FROM":
				err = fmt.Errorf("FROM %s: %w%s", src.name, err, hint)
			default:
				err = fmt.Errorf("%s=%s: no stage named %q%s; as an image: %w", src.what, src.name, src.name, hint, err)
			}
			return &errdefs.SourceError{File: src.loc.File, Range: src.loc.Range, Err: err}
		})
	}
	return g.Wait()
}
