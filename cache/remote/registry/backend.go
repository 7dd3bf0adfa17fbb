package registry

import (
	"context"
	"fmt"
	"strings"

	"github.com/kiln-build/kiln/cache/remote"
	"github.com/kiln-build/kiln/config"
	"github.com/kiln-build/kiln/internal/attrs"
)

// Backend is type=registry: --cache-from and --cache-to ref=REFERENCE (a
// cache manifest, or an image with inline cache to import), and a
// [[cache.blob]] ref = "REPOSITORY" that shared caches keep their blobs
// in.
func Backend() remote.Backend {
	b := remote.ManifestBackend(ParseImport, ImportFactory, ParseExport, ExportFactory)
	b.Blobs = parseBlobs
	return b
}

// ParseImport checks the attributes of a --cache-from value of the type.
func ParseImport(o remote.Option) (remote.ImportSpec, error) {
	s := remote.ImportSpec{Type: o.Type}
	p := attrs.New(o.String(), o.Attrs)
	p.String("ref", &s.Ref)
	if err := p.Parse(); err != nil {
		return s, err
	}
	if s.Ref == "" {
		return s, p.Errorf("ref is required (ref=registry/repository:tag)")
	}
	return s, nil
}

// ParseExport checks the attributes of a --cache-to value of the type.
func ParseExport(o remote.Option) (remote.ExportSpec, error) {
	s, p, err := remote.ParseManifestExport(o, func(p *attrs.Parser, s *remote.ExportSpec) { p.String("ref", &s.Ref) })
	if err != nil {
		return s, err
	}
	if s.Ref == "" {
		return s, p.Errorf("ref is required (ref=registry/repository:tag)")
	}
	return s, nil
}

func parseBlobs(p *config.TableParser) (remote.BlobsFunc, error) {
	var ref string
	p.StringFunc("ref", func(v string) error {
		if strings.Contains(v, "://") {
			return fmt.Errorf("bad reference %q: write it without a scheme (registry.example.com/app/cache)", v)
		}
		ref = v
		return nil
	})
	if err := p.Parse(); err != nil {
		return nil, err
	}
	if ref == "" {
		return nil, p.Table().Errorf("ref", `missing: a registry cache needs ref = "registry.example.com/app/cache"`)
	}
	return func(_ context.Context, d remote.Deps) (remote.BlobStore, error) {
		b, err := NewBlobs(d.Resolver, ref)
		if err != nil {
			return nil, fmt.Errorf("[[cache.blob]] %s: %w", ref, err)
		}
		return b, nil
	}, nil
}
