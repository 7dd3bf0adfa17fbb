package local

import (
	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/cache/remote"
	"github.com/kiln-build/kiln/internal/attrs"
)

// Backend is type=local: --cache-from src=DIRECTORY[,tag=|digest=] and
// --cache-to dest=DIRECTORY[,tag=], an OCI layout on the client.
func Backend() remote.Backend {
	return remote.ManifestBackend(ParseImport, ImportFactory, ParseExport, ExportFactory)
}

// ParseImport checks the attributes of a --cache-from value of the type.
func ParseImport(o remote.Option) (remote.ImportSpec, error) {
	s := remote.ImportSpec{Type: o.Type}
	p := attrs.New(o.String(), o.Attrs)
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
		s.Tag = remote.DefaultTag
	}
	return s, nil
}

// ParseExport checks the attributes of a --cache-to value of the type.
func ParseExport(o remote.Option) (remote.ExportSpec, error) {
	s, p, err := remote.ParseManifestExport(o, func(p *attrs.Parser, s *remote.ExportSpec) {
		p.String("dest", &s.Dest)
		p.String("tag", &s.Tag)
	})
	if err != nil {
		return s, err
	}
	if s.Dest == "" {
		return s, p.Errorf("dest is required (dest=DIRECTORY)")
	}
	if s.Tag == "" {
		s.Tag = remote.DefaultTag
	}
	return s, nil
}
