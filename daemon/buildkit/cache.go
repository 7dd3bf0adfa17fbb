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
// finds through the session (remote.ClientContentStores).
func cacheOptions(req *controlapi.SolveRequest, o *dockerfileOpts, ereq *engine.Request) error {
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
		spec, err := remote.ParseImport(c.Type, attrs)
		if err != nil {
			return err
		}
		ereq.CacheFrom = append(ereq.CacheFrom, spec)
	}
	for _, c := range exports {
		spec, err := remote.ParseExport(c.Type, c.Attrs)
		if err != nil {
			return err
		}
		ereq.CacheTo = append(ereq.CacheTo, engine.CacheExport{Spec: spec})
	}
	return nil
}
