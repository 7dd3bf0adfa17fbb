package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/cache/remote"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/exporter"
	"github.com/kiln-build/kiln/progress"
	"github.com/kiln-build/kiln/registry"
	"github.com/kiln-build/kiln/session"
)

// CacheBackends wires remote caches (docs/dev/cache.md). cmd/kilnd fills
// it with map literals; the engine knows no implementation.
type CacheBackends struct {
	// Shared makes the daemon-wide shared caches (kilnd.toml's
	// [[cache.registry]] over [[cache.blob]]) once the daemon's parts
	// exist. Every build consults them and exports every step to them.
	Shared func(ctx context.Context, p *Parts) ([]*remote.Shared, error)
	// Importers and Exporters make a build's --cache-from and --cache-to
	// backends, by type.
	Importers map[string]remote.ImportFactory
	Exporters map[string]remote.ExportFactory
}

// CacheExport is one --cache-to value of a request.
type CacheExport struct {
	Spec remote.ExportSpec
	// Output opens the client-side stream the export is written to
	// (type=local); nil when the client receives none.
	Output func() (io.WriteCloser, error)
}

// buildCaches are a build's own cache backends.
type buildCaches struct {
	remotes   []cache.RemoteCache
	exporters []cache.Exporter
	inline    exporter.InlineCache
}

// caches makes the backends of req's --cache-from and --cache-to values.
func (e *Engine) caches(ctx context.Context, req Request, resolver *registry.Resolver, sess session.Session, pw progress.Writer) (*buildCaches, error) {
	out := &buildCaches{}
	if len(req.CacheFrom) == 0 && len(req.CacheTo) == 0 {
		return out, nil
	}
	deps := remote.Deps{
		Importer: e.c.CacheImporter, Layers: e.c.Layers, Local: remote.LocalBlobs(e.c.Layers.Content(), e.c.ContentDir),
		Resolver: resolver, Session: sess, Platform: e.c.Platform, Writer: e.c.CacheWriter, Logger: e.c.Logger,
		TempDir: e.c.CacheTempDir,
	}
	if deps.Importer == nil {
		return nil, errdefs.WithClass(errdefs.ErrUnimplemented, fmt.Errorf("--cache-from and --cache-to are not available in this kilnd (no cache importer configured)"))
	}
	for i, spec := range req.CacheFrom {
		f, ok := e.c.Caches.Importers[spec.Type]
		if !ok {
			return nil, errdefs.Invalidf("--cache-from: unknown cache type %q (valid types: %s)", spec.Type, strings.Join(mapKeys(e.c.Caches.Importers), ", "))
		}
		spec.Index = i
		rc, err := f(ctx, deps, spec)
		if err != nil {
			return nil, err
		}
		out.remotes = append(out.remotes, rc)
	}
	for i, ce := range req.CacheTo {
		f, ok := e.c.Caches.Exporters[ce.Spec.Type]
		if !ok {
			return nil, errdefs.Invalidf("--cache-to: unknown cache type %q (valid types: %s)", ce.Spec.Type, strings.Join(mapKeys(e.c.Caches.Exporters), ", "))
		}
		spec := ce.Spec
		spec.Index = i
		d := deps
		d.Output = ce.Output
		ex, err := f(ctx, d, spec)
		if err != nil {
			return nil, err
		}
		if in, ok := ex.(exporter.InlineCache); ok {
			if out.inline != nil {
				return nil, errdefs.Invalidf("--cache-to type=inline: given twice")
			}
			out.inline = in
			if !hasImageOutput(req) {
				pw.Write(progress.Event{Warning: &progress.Warning{Message: "--cache-to type=inline: the build exports no image to carry the cache (use -t NAME or --output type=image/registry)"}})
			}
		}
		out.exporters = append(out.exporters, ex)
	}
	return out, nil
}

// hasImageOutput reports whether req exports an image (inline cache needs
// one).
func hasImageOutput(req Request) bool {
	if len(req.Tags) > 0 {
		return true
	}
	for _, o := range req.Outputs {
		switch o.Type {
		case exporter.TypeImage, exporter.TypeRegistry, exporter.TypeOCI, exporter.TypeDocker:
			return true
		}
	}
	return false
}

// SharedUsage reports what the daemon's shared caches hold (kiln du shows
// it apart from the daemon's own usage). A cache that cannot be walked
// (its index is down) is reported with what could be counted, and its
// error.
func SharedUsage(ctx context.Context, p *Parts) ([]remote.SharedUsage, error) {
	var out []remote.SharedUsage
	var errs []error
	for _, sc := range p.SharedCaches {
		u, err := sc.Usage(ctx)
		out = append(out, u)
		if err != nil {
			errs = append(errs, fmt.Errorf("shared cache %s: %w", u.Index, err))
		}
	}
	return out, errors.Join(errs...)
}
