package remote

import (
	"fmt"
	"strings"

	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/internal/attrs"
	"github.com/kiln-build/kiln/layer"
)

// Cache types, as --cache-from and --cache-to name them (buildx's).
const (
	TypeRegistry = "registry" // a cache manifest (or an image with inline cache) in a registry
	TypeLocal    = "local"    // an OCI layout directory on the client
	TypeInline   = "inline"   // records in the exported image's config
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

// ImportSpec is one --cache-from value.
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
	// Index is the value's position among the build's --cache-from
	// values (it names the client directory of a local cache).
	Index int
}

// ExportSpec is one --cache-to value.
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
	// Index is the value's position among the build's --cache-to values.
	Index int
}

// ImportTypes and ExportTypes list the types Parse* accept.
func ImportTypes() []string { return []string{TypeLocal, TypeRegistry} }

// ExportTypes lists the --cache-to types.
func ExportTypes() []string { return []string{TypeInline, TypeLocal, TypeRegistry} }

// ParseImport checks one --cache-from value: its type and its other
// attributes. An unknown type or attribute, or a missing one, is an
// invalid-argument error that says what is valid.
func ParseImport(typ string, a map[string]string) (ImportSpec, error) {
	s := ImportSpec{Type: typ}
	p := attrs.New("--cache-from type="+typ, a)
	switch typ {
	case TypeRegistry:
		p.String("ref", &s.Ref)
		if err := p.Parse(); err != nil {
			return s, err
		}
		if s.Ref == "" {
			return s, p.Errorf("ref is required (ref=registry/repository:tag)")
		}
	case TypeLocal:
		p.String("src", &s.Src)
		p.String("tag", &s.Tag)
		p.Func("digest", func(v string) error {
			d, err := digest.Parse(v)
			s.Digest = d
			return err
		})
		if err := p.Parse(); err != nil {
			return s, err
		}
		if s.Src == "" {
			return s, p.Errorf("src is required (src=DIRECTORY)")
		}
		if s.Tag != "" && s.Digest != "" {
			return s, p.Errorf("give tag or digest, not both")
		}
		if s.Tag == "" && s.Digest == "" {
			s.Tag = DefaultTag
		}
	case TypeInline:
		return s, errdefs.Invalidf("--cache-from type=inline: inline cache is read from the image: use --cache-from type=registry,ref=IMAGE")
	default:
		return s, errdefs.Invalidf("--cache-from: unknown cache type %q (valid types: %s)", typ, strings.Join(ImportTypes(), ", "))
	}
	return s, nil
}

// ParseExport checks one --cache-to value.
func ParseExport(typ string, a map[string]string) (ExportSpec, error) {
	s := ExportSpec{Type: typ, Mode: ModeMin, OCIMediaTypes: true}
	p := attrs.New("--cache-to type="+typ, a)
	p.Bool("ignore-error", &s.IgnoreError)
	switch typ {
	case TypeRegistry, TypeLocal:
		if typ == TypeRegistry {
			p.String("ref", &s.Ref)
		} else {
			p.String("dest", &s.Dest)
			p.String("tag", &s.Tag)
		}
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
			return s, err
		}
		if err := s.Compression.Validate(); err != nil {
			return s, fmt.Errorf("--cache-to type=%s: %w", typ, err)
		}
		if typ == TypeRegistry && s.Ref == "" {
			return s, p.Errorf("ref is required (ref=registry/repository:tag)")
		}
		if typ == TypeLocal && s.Dest == "" {
			return s, p.Errorf("dest is required (dest=DIRECTORY)")
		}
		if typ == TypeLocal && s.Tag == "" {
			s.Tag = DefaultTag
		}
	case TypeInline:
		p.Func("mode", func(v string) error {
			if v != ModeMin {
				return fmt.Errorf("inline cache holds only the image's own layers: mode=%s is the only mode", ModeMin)
			}
			return nil
		})
		if err := p.Parse(); err != nil {
			return s, err
		}
	default:
		return s, errdefs.Invalidf("--cache-to: unknown cache type %q (valid types: %s)", typ, strings.Join(ExportTypes(), ", "))
	}
	return s, nil
}
