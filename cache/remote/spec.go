package remote

import (
	"context"
	"fmt"

	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/internal/attrs"
	"github.com/kiln-build/kiln/layer"
)

// The built-in cache types, as --cache-from and --cache-to name them
// (buildx's), and the shared cache's.
const (
	TypeRegistry = "registry" // a cache manifest (or an image with inline cache) in a registry
	TypeLocal    = "local"    // an OCI layout directory on the client
	TypeInline   = "inline"   // records in the exported image's config
	// TypeFilesystem is a [[cache.blob]] directory several daemons share.
	TypeFilesystem = "filesystem"
)

// Export modes: min exports the records of the result's layers, max those
// of every step.
const (
	ModeMin = "min"
	ModeMax = "max"
)

// DefaultTag is the tag of a local cache in its layout's index.json when
// none is given (buildx's local cache has no tag; its index has one entry).
const DefaultTag = "latest"

// ImportSpec is one --cache-from value of the built-in manifest caches
// (type=registry, type=local), as their backends parsed it.
type ImportSpec struct {
	Type string
	// Ref is the registry reference (type=registry): a cache manifest or
	// an image carrying inline cache.
	Ref string
	// Src is the client's OCI layout directory (type=local).
	Src string
	// Tag names the cache in Src's index.json (default DefaultTag); Digest
	// picks a manifest by digest instead.
	Tag    string
	Digest digest.Digest
}

// ExportSpec is one --cache-to value of the built-in caches.
type ExportSpec struct {
	Type string
	Ref  string // type=registry
	Dest string // type=local: the client's directory
	Tag  string // type=local (default DefaultTag)
	Mode string // ModeMin (default) or ModeMax
	// Compression of the layer blobs the export makes (default gzip);
	// existing blobs are reused unless Compression.Force.
	Compression   layer.Compression
	OCIMediaTypes bool // OCI (default) or Docker manifest media types
	// IgnoreError turns an export failure into a warning.
	IgnoreError bool
}

// NewExportSpec returns the defaults of a --cache-to value of type typ:
// mode=min, OCI media types.
func NewExportSpec(typ string) ExportSpec {
	return ExportSpec{Type: typ, Mode: ModeMin, OCIMediaTypes: true}
}

// ParseManifestExport parses the attributes of a --cache-to value of a
// manifest export (ManifestExporter: type=registry, type=local): bind
// binds the type's own (ref; dest, tag), and every manifest export takes
// mode, the compression attributes, oci-mediatypes, image-manifest and
// ignore-error. p is the parser, for the type's own checks after.
func ParseManifestExport(o Option, bind func(p *attrs.Parser, s *ExportSpec)) (s ExportSpec, p *attrs.Parser, err error) {
	s = NewExportSpec(o.Type)
	p = attrs.New(o.String(), o.Attrs)
	bind(p, &s)
	p.Bool("ignore-error", &s.IgnoreError)
	p.Func("mode", func(v string) error {
		if v != ModeMin && v != ModeMax {
			return fmt.Errorf("want %s or %s", ModeMin, ModeMax)
		}
		s.Mode = v
		return nil
	})
	layer.BindCompression(p, &s.Compression)
	p.Bool("oci-mediatypes", &s.OCIMediaTypes)
	p.Bool("image-manifest", new(bool)) // Kiln always writes an image manifest
	if err := p.Parse(); err != nil {
		return s, p, err
	}
	if err := s.Compression.Validate(); err != nil {
		return s, p, fmt.Errorf("%s: %w", o, err)
	}
	return s, p, nil
}

// InlineBackend is type=inline: --cache-to writes the records into the
// exported image's config; --cache-from reads them with type=registry.
func InlineBackend() Backend {
	return Backend{
		ImportHint: "inline cache is read from the image: use --cache-from type=registry,ref=IMAGE",
		Export: func(o Option) (ExportFunc, error) {
			var ignore bool
			p := attrs.New(o.String(), o.Attrs)
			p.Bool("ignore-error", &ignore)
			p.Func("mode", func(v string) error {
				if v != ModeMin {
					return fmt.Errorf("inline cache holds only the image's own layers: mode=%s is the only mode", ModeMin)
				}
				return nil
			})
			if err := p.Parse(); err != nil {
				return nil, err
			}
			return func(_ context.Context, d Deps) (cache.Exporter, error) {
				return NewInline(d.Layers, d.Writer), nil
			}, nil
		},
	}
}

// ManifestBackend is the Backend of a manifest cache type (type=registry,
// type=local): parseImport and parseExport check a value's attributes,
// makeImport and makeExport make the build's cache from what they parsed.
func ManifestBackend(
	parseImport func(Option) (ImportSpec, error), makeImport func(context.Context, Deps, ImportSpec) (cache.RemoteCache, error),
	parseExport func(Option) (ExportSpec, error), makeExport func(context.Context, Deps, ExportSpec) (cache.Exporter, error),
) Backend {
	return Backend{
		Import: func(o Option) (ImportFunc, error) {
			s, err := parseImport(o)
			if err != nil {
				return nil, err
			}
			return func(ctx context.Context, d Deps) (cache.RemoteCache, error) { return makeImport(ctx, d, s) }, nil
		},
		Export: func(o Option) (ExportFunc, error) {
			s, err := parseExport(o)
			if err != nil {
				return nil, err
			}
			return func(ctx context.Context, d Deps) (cache.Exporter, error) { return makeExport(ctx, d, s) }, nil
		},
	}
}
