package remote_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/cache/remote"
	cachelocal "github.com/kiln-build/kiln/cache/remote/local"
	cacheregistry "github.com/kiln-build/kiln/cache/remote/registry"
	"github.com/kiln-build/kiln/config"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/layer"
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

// memIndex is a shared index in memory, the index of the "mem" type
// TestSharedTables registers.
type memIndex struct {
	name string
	recs map[digest.Digest][]remote.Record
}

func (m *memIndex) Get(_ context.Context, key digest.Digest) ([]remote.Record, error) {
	if r, ok := m.recs[key]; ok {
		return r, nil
	}
	return nil, errdefs.NotFoundf("no record of %s", key)
}

func (m *memIndex) Put(_ context.Context, rec remote.Record, _ string) error {
	m.recs[rec.Key] = append(m.recs[rec.Key], rec)
	return nil
}

func (m *memIndex) Touch(context.Context, digest.Digest, string) error { return nil }

// A shared index type of its own reads its table keys through the same
// parser as the built-in ones: registering it is all it takes.
func TestSharedTables(t *testing.T) {
	t.Parallel()
	var opened []*memIndex
	backends := builtin()
	backends["mem"] = remote.Backend{Index: func(p *config.TableParser) (remote.IndexFunc, error) {
		var name string
		p.String("name", &name)
		if err := p.Parse(); err != nil {
			return nil, err
		}
		if name == "" {
			return nil, p.Table().Errorf("name", "missing")
		}
		return func(context.Context, remote.Deps) (remote.Index, error) {
			idx := &memIndex{name: name, recs: map[digest.Digest][]remote.Record{}}
			opened = append(opened, idx)
			return idx, nil
		}, nil
	}}
	blobs := t.TempDir()
	tests := []struct {
		name, doc string
		want      string // the error; "" opens the caches
	}{
		{name: "mem over a directory", doc: "[[cache.registry]]\ntype = \"mem\"\nname = \"one\"\nexport = \"sync\"\n\n[[cache.blob]]\ntype = \"filesystem\"\npath = \"" + blobs + "\"\n"},
		{
			name: "its own key missing",
			doc:  "[[cache.registry]]\ntype = \"mem\"\n[[cache.blob]]\ntype = \"filesystem\"\npath = \"" + blobs + "\"\n",
			want: "kilnd.toml:1: [[cache.registry]] name: missing",
		},
		{
			name: "a key it does not take",
			doc:  "[[cache.registry]]\ntype = \"mem\"\nname = \"one\"\nttl = 3\n[[cache.blob]]\ntype = \"filesystem\"\npath = \"" + blobs + "\"\n",
			want: `kilnd.toml:4: [[cache.registry]] ttl: unknown key for type "mem" (valid: type, compression, export, flush-timeout, name)`,
		},
		{
			name: "every problem at its line",
			doc:  "[[cache.registry]]\ntype = \"mem\"\nname = 1\ncompression = \"lz4\"\n[[cache.blob]]\ntype = \"mem\"\n",
			want: "kilnd.toml:3: [[cache.registry]] name: wrong type: want a string, got an integer\n" +
				"kilnd.toml:4: [[cache.registry]] compression: unsupported compression \"lz4\" (want \"zstd\", \"gzip\" or \"uncompressed\")\n" +
				"kilnd.toml:6: [[cache.blob]] type: unsupported cache type \"mem\" (supported: filesystem, registry)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _, err := config.Load(strings.NewReader(tt.doc), "kilnd.toml")
			if err != nil {
				t.Fatal(err)
			}
			open, err := backends.Shared(cfg.CacheTables("registry"), cfg.CacheTables("blob"))
			if tt.want != "" {
				if err == nil || err.Error() != tt.want || !errdefs.IsInvalidArgument(err) {
					t.Errorf("Shared = %v\nwant %s", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			d := remote.Deps{
				Writer: "0123456789abcdef", Importer: remote.NewImporter(nil, nil, nil), Layers: layer.NewMaker(nil, nil),
				Local: remote.LocalBlobs(nil, ""), Logger: slog.New(slog.DiscardHandler),
			}
			shared, err := open(context.Background(), d)
			if err != nil {
				t.Fatal(err)
			}
			defer shared[0].Close()
			if len(shared) != 1 || shared[0].Name() != "mem" || len(opened) != 1 || opened[0].name != "one" || shared[0].Index() != remote.Index(opened[0]) {
				t.Errorf("opened %v over %v", shared, opened)
			}
		})
	}
}
