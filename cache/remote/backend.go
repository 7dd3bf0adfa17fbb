package remote

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/config"
	"github.com/kiln-build/kiln/core/errdefs"
)

// Backend is one remote cache type, registered by name in a Backends map
// (kilnd's is one map literal in cmd/kilnd; an embedder passes its own to
// engine.Open). Each field is one use of the type and parses what users
// write for that use, so a new backend is one value and no other package
// changes. A nil field means the type has no such use; naming the type
// there is an error that lists the types that have it.
//
//	backends := remote.Backends{
//		"registry": cacheregistry.Backend(),
//		"mycache":  {Import: parseMyImport, Export: parseMyExport},
//	}
type Backend struct {
	// Import checks one --cache-from value of the type and returns what
	// makes the build's cache from it.
	Import func(o Option) (ImportFunc, error)
	// ImportHint, when Import is nil, says why the type cannot be
	// imported and what to use instead.
	ImportHint string
	// Export checks one --cache-to value of the type.
	Export func(o Option) (ExportFunc, error)
	// Index checks a kilnd.toml [[cache.registry]] table of the type: it
	// binds its keys to p (the keys every shared index takes, see
	// bindShared, are bound already), calls p.Parse, checks what it needs and returns
	// what makes the daemon's shared index.
	Index func(p *config.TableParser) (IndexFunc, error)
	// Blobs checks a [[cache.blob]] table of the type, as Index does,
	// and returns what opens the blob store the shared indexes use.
	Blobs func(p *config.TableParser) (BlobsFunc, error)
}

// Option is one --cache-from or --cache-to value as the client gave it.
type Option struct {
	Flag  string // "--cache-from" or "--cache-to"
	Type  string
	Attrs map[string]string
}

// String names the value in messages: "--cache-to type=registry".
func (o Option) String() string { return o.Flag + " type=" + o.Type }

// Errorf is an errdefs.ErrInvalidArgument error about the value.
func (o Option) Errorf(format string, args ...any) error {
	return errdefs.Invalidf("%s: "+format, append([]any{o}, args...)...)
}

// ImportFunc makes the cache of one --cache-from value for a build; d.Index
// is the value's position among the build's --cache-from values.
type ImportFunc func(ctx context.Context, d Deps) (cache.RemoteCache, error)

// ExportFunc makes the exporter of one --cache-to value for a build.
type ExportFunc func(ctx context.Context, d Deps) (cache.Exporter, error)

// IndexFunc opens a shared cache index once the daemon's parts exist (d
// has no session).
type IndexFunc func(ctx context.Context, d Deps) (Index, error)

// BlobsFunc opens a shared cache blob store.
type BlobsFunc func(ctx context.Context, d Deps) (BlobStore, error)

// Backends are the cache backends of a daemon, by type name.
type Backends map[string]Backend

// Flags of the values ParseImport and ParseExport check.
const (
	FlagCacheFrom = "--cache-from"
	FlagCacheTo   = "--cache-to"
)

// ParseImport checks one --cache-from value with its type's backend. An
// unknown type, or one that cannot be imported, is an invalid-argument
// error that lists the types that can.
func (b Backends) ParseImport(typ string, attrs map[string]string) (ImportFunc, error) {
	be, ok := b[typ]
	if !ok || be.Import == nil {
		if ok && be.ImportHint != "" {
			return nil, errdefs.Invalidf("%s type=%s: %s", FlagCacheFrom, typ, be.ImportHint)
		}
		return nil, errdefs.Invalidf("%s: unknown cache type %q (valid types: %s)", FlagCacheFrom, typ, strings.Join(b.names(func(x Backend) bool { return x.Import != nil }), ", "))
	}
	return be.Import(Option{Flag: FlagCacheFrom, Type: typ, Attrs: nonNil(attrs)})
}

// ParseExport checks one --cache-to value with its type's backend.
func (b Backends) ParseExport(typ string, attrs map[string]string) (ExportFunc, error) {
	be, ok := b[typ]
	if !ok || be.Export == nil {
		return nil, errdefs.Invalidf("%s: unknown cache type %q (valid types: %s)", FlagCacheTo, typ, strings.Join(b.names(func(x Backend) bool { return x.Export != nil }), ", "))
	}
	return be.Export(Option{Flag: FlagCacheTo, Type: typ, Attrs: nonNil(attrs)})
}

// names lists the types that have a use, sorted.
func (b Backends) names(has func(Backend) bool) []string {
	var out []string
	for _, n := range slices.Sorted(maps.Keys(b)) {
		if has(b[n]) {
			out = append(out, n)
		}
	}
	return out
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// tableBackend finds the backend of table t for a use ("[[cache.blob]]"
// tables need Blobs, "[[cache.registry]]" ones Index).
func (b Backends) tableBackend(t config.Table, has func(Backend) bool) (Backend, error) {
	valid := strings.Join(b.names(has), ", ")
	if _, ok := t.Keys["type"]; !ok {
		return Backend{}, t.Errorf("type", "missing: want one of %s", valid)
	}
	typ, ok := t.Keys["type"].(string)
	if !ok {
		return Backend{}, t.Errorf("type", "wrong type: want a string (one of %s)", valid)
	}
	be, ok := b[typ]
	if !ok || !has(be) {
		return Backend{}, t.Errorf("type", "unsupported cache type %q (supported: %s)", typ, valid)
	}
	return be, nil
}
