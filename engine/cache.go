package engine

import (
	"context"
	"io"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/cache/remote"
	"github.com/kiln-build/kiln/config"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/exporter"
	"github.com/kiln-build/kiln/progress"
	"github.com/kiln-build/kiln/registry"
	"github.com/kiln-build/kiln/session"
)

// CacheBackends wires remote caches (docs/dev/cache.md). The engine
// knows no implementation: cmd/kilnd registers kilnd's backends by name
// in one map literal, next to the exporters and frontends, and an
// embedder passes its own the same way.
type CacheBackends struct {
	// Types are the cache backends by type name: what --cache-from
	// type=NAME and --cache-to type=NAME make, and what kilnd.toml's
	// shared cache tables of type NAME open. Each backend parses its own
	// attributes and table keys.
	Types remote.Backends
	// Indexes and Blobs are kilnd.toml's [[cache.registry]] and
	// [[cache.blob]] tables (config.Config.CacheTables): the daemon-wide
	// shared caches, one per index over the blob stores, that every
	// build consults and exports every step to. Open checks them with
	// Types and fails at the first bad line.
	Indexes, Blobs []config.Table
	// Shared, when set, makes more shared caches in Go (tests, embedders
	// that build an index themselves); d are the daemon's parts a shared
	// cache works with (no session).
	Shared remote.SharedFunc
}

// CacheImport is one --cache-from value of a request, as the client gave
// it; the backend of Type checks Attrs when the build starts.
type CacheImport struct {
	Type  string
	Attrs map[string]string
}

// CacheExport is one --cache-to value of a request.
type CacheExport struct {
	Type  string
	Attrs map[string]string
	// Output opens the client-side stream the export is written to
	// (type=local); nil when the client receives none.
	Output func() (io.WriteCloser, error)
}

// cacheFuncs are a request's --cache-from and --cache-to values, checked.
type cacheFuncs struct {
	imports []remote.ImportFunc
	exports []remote.ExportFunc
}

// parseCaches checks req's --cache-from and --cache-to values with the
// backends of their types, before anything runs.
func (e *Engine) parseCaches(req Request) (cacheFuncs, error) {
	var out cacheFuncs
	for _, c := range req.CacheFrom {
		f, err := e.backends.Types.ParseImport(c.Type, c.Attrs)
		if err != nil {
			return out, err
		}
		out.imports = append(out.imports, f)
	}
	for _, c := range req.CacheTo {
		f, err := e.backends.Types.ParseExport(c.Type, c.Attrs)
		if err != nil {
			return out, err
		}
		out.exports = append(out.exports, f)
	}
	return out, nil
}

// buildCaches are a build's own cache backends.
type buildCaches struct {
	remotes   []cache.RemoteCache
	exporters []cache.Exporter
	inline    exporter.InlineCache
}

// caches makes the backends of req's --cache-from and --cache-to values
// (fs, checked by parseCaches).
func (e *Engine) caches(ctx context.Context, req Request, fs cacheFuncs, resolver *registry.Resolver, sess session.Session, pw progress.Writer) (*buildCaches, error) {
	out := &buildCaches{}
	if len(fs.imports) == 0 && len(fs.exports) == 0 {
		return out, nil
	}
	deps := e.cacheDeps()
	deps.Resolver, deps.Session = resolver, sess
	for i, f := range fs.imports {
		d := deps
		d.Index = i
		rc, err := f(ctx, d)
		if err != nil {
			return nil, err
		}
		out.remotes = append(out.remotes, rc)
	}
	for i, f := range fs.exports {
		d := deps
		d.Index, d.Output = i, req.CacheTo[i].Output
		ex, err := f(ctx, d)
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
