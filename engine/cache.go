package engine

import (
	"context"
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
	// d are the daemon's parts a shared cache works with (no session).
	Shared func(ctx context.Context, d remote.Deps) ([]*remote.Shared, error)
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
	deps := e.cacheDeps()
	deps.Resolver, deps.Session = resolver, sess
	for i, spec := range req.CacheFrom {
		f, ok := e.backends.Importers[spec.Type]
		if !ok {
			return nil, errdefs.Invalidf("--cache-from: unknown cache type %q (valid types: %s)", spec.Type, strings.Join(mapKeys(e.backends.Importers), ", "))
		}
		spec.Index = i
		rc, err := f(ctx, deps, spec)
		if err != nil {
			return nil, err
		}
		out.remotes = append(out.remotes, rc)
	}
	for i, ce := range req.CacheTo {
		f, ok := e.backends.Exporters[ce.Spec.Type]
		if !ok {
			return nil, errdefs.Invalidf("--cache-to: unknown cache type %q (valid types: %s)", ce.Spec.Type, strings.Join(mapKeys(e.backends.Exporters), ", "))
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
			if !e.imageOutput(req) {
				pw.Write(progress.Event{Warning: &progress.Warning{Message: "--cache-to type=inline: the build exports no image to carry the cache (use -t NAME or --output type=image/registry)"}})
			}
		}
		out.exporters = append(out.exporters, ex)
	}
	return out, nil
}
