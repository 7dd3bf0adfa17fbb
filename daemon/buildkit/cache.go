package buildkit

import (
	"maps"

	controlapi "github.com/moby/buildkit/api/services/control"

	"github.com/kiln-build/kiln/cache/remote"
	"github.com/kiln-build/kiln/engine"
)

// cacheOptions maps --import-cache and --export-cache (the request's cache
// options, or the frontend's cache-imports) to the engine's. A local cache
// directory stays on the client: BuildKit's clients expose it as a content
// store over the session ("local:DIR"), which the local cache backend
// finds through the session (remote.ClientContentStores). The engine
// parses the values with the registered backends' parsers, so an unknown
// type or attribute fails the build before it starts.
func cacheOptions(req *controlapi.SolveRequest, o *dockerfileOpts, ereq *engine.Request) {
	var imports, exports []*controlapi.CacheOptionsEntry
	if c := req.Cache; c != nil {
		imports, exports = c.Imports, c.Exports
		for _, ref := range c.ImportRefsDeprecated {
			imports = append(imports, &controlapi.CacheOptionsEntry{Type: remote.TypeRegistry, Attrs: map[string]string{"ref": ref}})
		}
		if c.ExportRefDeprecated != "" {
			attrs := maps.Clone(c.ExportAttrsDeprecated)
			if attrs == nil {
				attrs = map[string]string{}
			}
			attrs["ref"] = c.ExportRefDeprecated
			exports = append(exports, &controlapi.CacheOptionsEntry{Type: remote.TypeRegistry, Attrs: attrs})
		}
	}
	if len(imports) == 0 && o != nil {
		imports = o.cacheImports
	}
	for _, c := range imports {
		attrs := maps.Clone(c.Attrs)
		if c.Type == remote.TypeLocal && attrs["digest"] != "" {
			// buildctl resolves the tag in the directory's index.json
			// itself and sends the digest with it.
			delete(attrs, "tag")
		}
		// The engine parses the values with the registered cache
		// backends' own parsers when the build starts.
		ereq.CacheFrom = append(ereq.CacheFrom, engine.CacheImport{Type: c.Type, Attrs: attrs})
	}
	for _, c := range exports {
		ereq.CacheTo = append(ereq.CacheTo, engine.CacheExport{Type: c.Type, Attrs: maps.Clone(c.Attrs)})
	}
}
