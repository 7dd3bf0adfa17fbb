package remote

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/core/errdefs"
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
func ParseImport(typ string, attrs map[string]string) (ImportSpec, error) {
	s := ImportSpec{Type: typ}
	p := newParser("--cache-from", typ, attrs)
	switch typ {
	case TypeRegistry:
		p.str("ref", &s.Ref)
		if err := p.parse(); err != nil {
			return s, err
		}
		if s.Ref == "" {
			return s, p.errorf("ref is required (ref=registry/repository:tag)")
		}
	case TypeLocal:
		p.str("src", &s.Src)
		p.str("tag", &s.Tag)
		p.fns["digest"] = func(v string) error {
			d, err := digest.Parse(v)
			s.Digest = d
			return err
		}
		if err := p.parse(); err != nil {
			return s, err
		}
		if s.Src == "" {
			return s, p.errorf("src is required (src=DIRECTORY)")
		}
		if s.Tag != "" && s.Digest != "" {
			return s, p.errorf("give tag or digest, not both")
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
func ParseExport(typ string, attrs map[string]string) (ExportSpec, error) {
	s := ExportSpec{Type: typ, Mode: ModeMin, OCIMediaTypes: true}
	p := newParser("--cache-to", typ, attrs)
	p.boolean("ignore-error", &s.IgnoreError)
	switch typ {
	case TypeRegistry, TypeLocal:
		if typ == TypeRegistry {
			p.str("ref", &s.Ref)
		} else {
			p.str("dest", &s.Dest)
			p.str("tag", &s.Tag)
		}
		p.fns["mode"] = func(v string) error {
			if v != ModeMin && v != ModeMax {
				return fmt.Errorf("want %s or %s", ModeMin, ModeMax)
			}
			s.Mode = v
			return nil
		}
		p.fns["compression"] = func(v string) error {
			s.Compression.Type = v
			return layer.Compression{Type: v}.Validate()
		}
		p.fns["compression-level"] = func(v string) error {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("%q is not a number", v)
			}
			s.Compression.Level = &n
			return nil
		}
		p.boolean("force-compression", &s.Compression.Force)
		p.boolean("oci-mediatypes", &s.OCIMediaTypes)
		p.boolean("image-manifest", new(bool)) // Kiln always writes an image manifest
		if err := p.parse(); err != nil {
			return s, err
		}
		if err := s.Compression.Validate(); err != nil {
			return s, fmt.Errorf("--cache-to type=%s: %w", typ, err)
		}
		if typ == TypeRegistry && s.Ref == "" {
			return s, p.errorf("ref is required (ref=registry/repository:tag)")
		}
		if typ == TypeLocal && s.Dest == "" {
			return s, p.errorf("dest is required (dest=DIRECTORY)")
		}
		if typ == TypeLocal && s.Tag == "" {
			s.Tag = DefaultTag
		}
	case TypeInline:
		p.fns["mode"] = func(v string) error {
			if v != ModeMin {
				return fmt.Errorf("inline cache holds only the image's own layers: mode=%s is the only mode", ModeMin)
			}
			return nil
		}
		if err := p.parse(); err != nil {
			return s, err
		}
	default:
		return s, errdefs.Invalidf("--cache-to: unknown cache type %q (valid types: %s)", typ, strings.Join(ExportTypes(), ", "))
	}
	return s, nil
}

// attrParser binds attribute names to fields and rejects the others with
// the list of valid ones.
type attrParser struct {
	flag, typ string
	attrs     map[string]string
	fns       map[string]func(string) error
}

func newParser(flag, typ string, attrs map[string]string) *attrParser {
	return &attrParser{flag: flag, typ: typ, attrs: attrs, fns: map[string]func(string) error{}}
}

func (p *attrParser) errorf(format string, args ...any) error {
	return errdefs.Invalidf("%s type=%s: "+format, append([]any{p.flag, p.typ}, args...)...)
}

func (p *attrParser) str(key string, dst *string) {
	p.fns[key] = func(v string) error {
		if v == "" {
			return fmt.Errorf("empty value")
		}
		*dst = v
		return nil
	}
}

func (p *attrParser) boolean(key string, dst *bool) {
	p.fns[key] = func(v string) error {
		if v == "" {
			*dst = true
			return nil
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("want true or false")
		}
		*dst = b
		return nil
	}
}

func (p *attrParser) parse() error {
	keys := make([]string, 0, len(p.attrs))
	for k := range p.attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fn, ok := p.fns[k]
		if !ok {
			valid := make([]string, 0, len(p.fns))
			for v := range p.fns {
				valid = append(valid, v)
			}
			sort.Strings(valid)
			return p.errorf("unknown attribute %q (valid: %s)", k, strings.Join(valid, ", "))
		}
		if err := fn(p.attrs[k]); err != nil {
			if errdefs.IsInvalidArgument(err) {
				return fmt.Errorf("%s type=%s: %w", p.flag, p.typ, err)
			}
			return p.errorf("%s=%s: %v", k, p.attrs[k], err)
		}
	}
	return nil
}
