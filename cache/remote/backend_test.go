package remote_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/cache/remote"
	cachelocal "github.com/kiln-build/kiln/cache/remote/local"
	cacheregistry "github.com/kiln-build/kiln/cache/remote/registry"
	"github.com/kiln-build/kiln/core/errdefs"
)

// builtin are the per-build cache types kilnd registers.
func builtin() remote.Backends {
	return remote.Backends{
		remote.TypeRegistry:   cacheregistry.Backend(),
		remote.TypeLocal:      cachelocal.Backend(),
		remote.TypeInline:     remote.InlineBackend(),
		remote.TypeFilesystem: remote.FilesystemBackend(),
	}
}

func TestParseExport(t *testing.T) {
	t.Parallel()
	parse := map[string]func(remote.Option) (remote.ExportSpec, error){
		remote.TypeRegistry: cacheregistry.ParseExport,
		remote.TypeLocal:    cachelocal.ParseExport,
	}
	tests := []struct {
		typ   string
		attrs map[string]string
		want  remote.ExportSpec
		err   string
	}{
		{"registry", map[string]string{"ref": "r/c:1"}, remote.ExportSpec{Type: "registry", Ref: "r/c:1", Mode: "min", OCIMediaTypes: true}, ""},
		{"registry", map[string]string{"ref": "r/c:1", "mode": "max", "compression": "zstd", "oci-mediatypes": "false", "ignore-error": "true", "image-manifest": "true"},
			remote.ExportSpec{Type: "registry", Ref: "r/c:1", Mode: "max", OCIMediaTypes: false, IgnoreError: true}, ""},
		{"local", map[string]string{"dest": "/c"}, remote.ExportSpec{Type: "local", Dest: "/c", Tag: "latest", Mode: "min", OCIMediaTypes: true}, ""},
		{"inline", nil, remote.ExportSpec{}, ""},
		{"inline", map[string]string{"mode": "max"}, remote.ExportSpec{}, "mode=min is the only mode"},
		{"registry", map[string]string{}, remote.ExportSpec{}, "ref is required"},
		// An empty value is as if the attribute were not given, as in
		// --output (internal/attrs); an empty compression is an error in
		// both.
		{"registry", map[string]string{"ref": ""}, remote.ExportSpec{}, "--cache-to type=registry: ref is required"},
		{"local", map[string]string{"dest": "/c", "tag": ""}, remote.ExportSpec{Type: "local", Dest: "/c", Tag: "latest", Mode: "min", OCIMediaTypes: true}, ""},
		{"registry", map[string]string{"ref": "x", "compression": ""}, remote.ExportSpec{}, "compression=: empty (want gzip, zstd or uncompressed)"},
		{"local", map[string]string{"dest": "/c", "mode": "all"}, remote.ExportSpec{}, "mode=all: want min or max"},
		{"registry", map[string]string{"ref": "x", "compression": "lz4"}, remote.ExportSpec{}, "unknown compression"},
		{"registry", map[string]string{"ref": "x", "compression-level": "high"}, remote.ExportSpec{}, `"high" is not a number`},
		{"gha", nil, remote.ExportSpec{}, `--cache-to: unknown cache type "gha" (valid types: inline, local, registry)`},
		{"filesystem", nil, remote.ExportSpec{}, `unknown cache type "filesystem"`},
	}
	for _, tt := range tests {
		t.Run(tt.typ+" "+tt.err, func(t *testing.T) {
			_, err := builtin().ParseExport(tt.typ, tt.attrs)
			if tt.err != "" {
				if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("ParseExport(%s, %v) = %v, want %q", tt.typ, tt.attrs, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseExport(%s, %v): %v", tt.typ, tt.attrs, err)
			}
			p, ok := parse[tt.typ]
			if !ok {
				return
			}
			got, err := p(remote.Option{Flag: remote.FlagCacheTo, Type: tt.typ, Attrs: tt.attrs})
			if err != nil {
				t.Fatal(err)
			}
			got.Compression = remote.ExportSpec{}.Compression
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("%s.ParseExport(%v) (-want +got):\n%s", tt.typ, tt.attrs, diff)
			}
		})
	}
}

func TestParseImport(t *testing.T) {
	t.Parallel()
	imp, err := cachelocal.ParseImport(remote.Option{Flag: remote.FlagCacheFrom, Type: "local", Attrs: map[string]string{"src": "/c", "digest": digest.FromString("m").String()}})
	if err != nil || imp.Tag != "" || imp.Digest == "" {
		t.Errorf("local.ParseImport(digest) = %+v, %v", imp, err)
	}
	tests := []struct {
		typ   string
		attrs map[string]string
		err   string
	}{
		{"local", map[string]string{"src": "/c", "tag": "x", "digest": digest.FromString("m").String()}, "not both"},
		{"local", map[string]string{"src": "/c", "digest": "nope"}, "digest=nope"},
		{"registry", map[string]string{"ref": "x", "mode": "max"}, `--cache-from type=registry: unknown attribute "mode" (valid: ref)`},
		{"inline", nil, "--cache-from type=inline: inline cache is read from the image: use --cache-from type=registry,ref=IMAGE"},
		{"gha", nil, `--cache-from: unknown cache type "gha" (valid types: local, registry)`},
		{"registry", nil, "ref is required"},
	}
	for _, tt := range tests {
		t.Run(tt.typ+" "+tt.err, func(t *testing.T) {
			if _, err := builtin().ParseImport(tt.typ, tt.attrs); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseImport(%s, %v) = %v, want %q", tt.typ, tt.attrs, err, tt.err)
			}
		})
	}
}
