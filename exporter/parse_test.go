package exporter

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/imagestore"
	"github.com/kiln-build/kiln/layer"
	"github.com/kiln-build/kiln/registry"
)

// parseDeps has everything every type needs; nothing is used by Parse
// but the presence checks.
func parseDeps(t *testing.T) Deps {
	t.Helper()
	r, err := registry.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return Deps{
		Layers:   layer.NewMaker(nil, nil),
		Images:   nopImageStore{},
		Resolver: r,
		Writer:   func() (io.WriteCloser, error) { return &bufWriter{}, nil },
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	deps := parseDeps(t)
	tests := []struct {
		typ   string
		attrs map[string]string
		want  []string // substrings of the message
	}{
		{TypeImage, map[string]string{"nmae": "app"}, []string{`type=image: unknown attribute "nmae"`, "compression, compression-level", "name, oci-mediatypes, push", "annotation.*"}},
		{TypeLocal, map[string]string{"dest": "out", "compression": "gzip"}, []string{`type=local: unknown attribute "compression"`, "valid: dest, platform-split, tar"}},
		{TypeTar, map[string]string{"dest": "o.tar", "tar": "true"}, []string{`unknown attribute "tar"`, "valid: dest, platform-split)"}},
		{TypeImage, map[string]string{"compression": "lz4"}, []string{"type=image: compression=lz4: unknown compression (want gzip, zstd or uncompressed)"}},
		{TypeOCI, map[string]string{"dest": "o.tar", "compression": ""}, []string{"compression=: empty"}},
		{TypeImage, map[string]string{"compression-level": "fast"}, []string{`compression-level=fast: "fast" is not a number`}},
		{TypeImage, map[string]string{"compression-level": "10"}, []string{"compression-level=10: gzip levels are 0 to 9"}},
		{TypeImage, map[string]string{"compression": "zstd", "compression-level": "23"}, []string{"compression-level=23: zstd levels are 0 to 22"}},
		{TypeImage, map[string]string{"push": "maybe"}, []string{"type=image: push=maybe: want true or false"}},
		{TypeImage, map[string]string{"push": "true"}, []string{"push=true needs a name"}},
		{TypeRegistry, nil, []string{"type=registry: push=true needs a name"}},
		{TypeImage, map[string]string{"name": "app", "push-by-digest": "true"}, []string{"push-by-digest=true needs push=true"}},
		{TypeImage, map[string]string{"name": "App:1"}, []string{`invalid image reference "App:1"`}},
		{TypeImage, map[string]string{"name": "app@sha256:" + strings.Repeat("a", 64)}, []string{"a tag, not a digest"}},
		{TypeOCI, nil, []string{"type=oci: dest is required"}},
		{TypeLocal, nil, []string{"type=local: dest is required (dest=DIRECTORY)"}},
		{TypeOCI, map[string]string{"dest": ""}, []string{"type=oci: dest is required"}},
		{TypeTar, map[string]string{"platform-split": "yes"}, []string{"platform-split=yes: want true or false"}},
		{TypeDocker, map[string]string{"annotation.a": "b"}, []string{"annotation-manifest.a: annotations need OCI media types"}},
		{TypeImage, map[string]string{"annotation-blob.a": "b"}, []string{`unknown annotation target "blob"`}},
		{TypeImage, map[string]string{"annotation-index[linux/amd64].a": "b"}, []string{"only manifest and manifest-descriptor annotations can name a platform"}},
		{TypeImage, map[string]string{"annotation[linux/amd64": "b"}, []string{"unclosed [platform]"}},
		{TypeImage, map[string]string{"annotation-index": "b"}, []string{"no annotation key"}},
	}
	for _, tc := range tests {
		t.Run(tc.typ+" "+strings.Join(keys(tc.attrs), ","), func(t *testing.T) {
			_, err := parse(tc.typ, tc.attrs, deps)
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("error %q is not in the invalid-argument class", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func keys(m map[string]string) []string {
	var ks []string
	for k, v := range m {
		ks = append(ks, k+"="+v)
	}
	return ks
}

func TestParseOptions(t *testing.T) {
	t.Parallel()
	deps := parseDeps(t)
	three, nine := 3, 9
	yes, no := true, false
	amd64 := ocispec.Platform{OS: "linux", Architecture: "amd64"}
	tests := []struct {
		typ   string
		attrs map[string]string
		want  any
	}{
		{TypeImage, nil, ImageOptions{Store: true, Format: ImageFormat{OCIMediaTypes: true}}},
		{TypeImage, map[string]string{
			"name": "app:1, reg.local:5000/app:2,", "push": "true", "push-by-digest": "1", "registry.insecure": "true",
			"store": "false", "unpack": "true", "compression": "zstd", "compression-level": "3", "force-compression": "",
			"oci-mediatypes": "true", "rewrite-timestamp": "false",
		}, ImageOptions{
			Names: []string{"app:1", "reg.local:5000/app:2"}, Push: true, PushByDigest: true, Insecure: true,
			Format: ImageFormat{Compression: layer.Compression{Type: layer.Zstd, Level: &three, Force: true}, OCIMediaTypes: true, NoRewriteTimestamp: true},
		}},
		{TypeRegistry, map[string]string{"name": "reg.local/app"}, ImageOptions{Names: []string{"reg.local/app"}, Store: true, Push: true, Format: ImageFormat{OCIMediaTypes: true}}},
		{TypeImage, map[string]string{
			"annotation.org.opencontainers.image.title": "App",
			"annotation-index.i":                        "1",
			"annotation-manifest[linux/amd64].m":        "2",
			"annotation[linux/amd64].p":                 "3",
			"annotation-manifest-descriptor.md":         "4",
			"annotation-index-descriptor.id":            "5",
		}, ImageOptions{Store: true, Format: ImageFormat{OCIMediaTypes: true, Annotations: []Annotation{
			{Target: AnnotateIndexDescriptor, Key: "id", Value: "5"},
			{Target: AnnotateIndex, Key: "i", Value: "1"},
			{Target: AnnotateManifestDescriptor, Key: "md", Value: "4"},
			{Target: AnnotateManifest, Platform: &amd64, Key: "m", Value: "2"},
			{Target: AnnotateManifest, Key: "org.opencontainers.image.title", Value: "App"},
			{Target: AnnotateManifest, Platform: &amd64, Key: "p", Value: "3"},
		}}}},
		{TypeOCI, map[string]string{"dest": "-", "name": "app", "compression-level": "9"}, TarballOptions{
			Dest: "-", Tar: true, Names: []string{"app"}, Format: ImageFormat{OCIMediaTypes: true, Compression: layer.Compression{Level: &nine}},
		}},
		{TypeOCI, map[string]string{"dest": "layout", "tar": "false"}, TarballOptions{Dest: "layout", Format: ImageFormat{OCIMediaTypes: true}}},
		{TypeDocker, nil, TarballOptions{Docker: true, Tar: true}},
		{TypeDocker, map[string]string{"dest": "i.tar", "oci-mediatypes": "true"}, TarballOptions{Docker: true, Tar: true, Dest: "i.tar", Format: ImageFormat{OCIMediaTypes: true}}},
		{TypeLocal, map[string]string{"dest": "out"}, FilesystemOptions{Dest: "out"}},
		{TypeLocal, map[string]string{"dest": "out", "platform-split": "false", "tar": "true"}, FilesystemOptions{Dest: "out", PlatformSplit: &no, Tar: true}},
		{TypeTar, map[string]string{"dest": "-", "platform-split": "true"}, FilesystemOptions{Dest: "-", PlatformSplit: &yes, Tar: true}},
	}
	for _, tc := range tests {
		t.Run(tc.typ+" "+strings.Join(keys(tc.attrs), ","), func(t *testing.T) {
			e, err := parse(tc.typ, tc.attrs, deps)
			if err != nil {
				t.Fatal(err)
			}
			var got any
			switch e := e.(type) {
			case *imageExporter:
				got = e.opts
			case *tarballExporter:
				got = e.opts
			case *fsExporter:
				got = e.opts
			default:
				t.Fatalf("Parse returned a %T", e)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseMissingDeps(t *testing.T) {
	t.Parallel()
	tests := []struct {
		typ   string
		attrs map[string]string
		deps  Deps
		want  string
	}{
		{TypeImage, nil, Deps{}, "no layer store"},
		{TypeRegistry, map[string]string{"name": "app"}, Deps{Layers: layer.NewMaker(nil, nil)}, "push without a registry resolver"},
		{TypeImage, map[string]string{"name": "app"}, Deps{Layers: layer.NewMaker(nil, nil)}, "store without an image store"},
		{TypeOCI, map[string]string{"dest": "-"}, Deps{Layers: layer.NewMaker(nil, nil)}, "no output stream"},
		{TypeLocal, map[string]string{"dest": "d"}, Deps{Layers: layer.NewMaker(nil, nil)}, "no output stream"},
	}
	for _, tc := range tests {
		t.Run(tc.typ+" "+tc.want, func(t *testing.T) {
			_, err := parse(tc.typ, tc.attrs, tc.deps)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errorsIsInternal(err) {
				t.Fatalf("Parse error %v, want an internal error containing %q", err, tc.want)
			}
		})
	}
}

func errorsIsInternal(err error) bool { return errors.Is(err, errdefs.ErrInternal) }

// nopImageStore accepts and forgets images.
type nopImageStore struct{}

func (nopImageStore) Put(context.Context, imagestore.Image) error { return nil }

func TestSortTypes(t *testing.T) {
	t.Parallel()
	got := []string{"tar", "zeta", "docker", "image", "alpha", "local", "registry", "oci"}
	SortTypes(got)
	want := []string{"image", "registry", "oci", "docker", "local", "tar", "alpha", "zeta"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("SortTypes (-want +got):\n%s", diff)
	}
}

func TestTagsJoinNames(t *testing.T) {
	t.Parallel()
	deps := parseDeps(t)
	deps.Tags = []string{"app:2", "a:3,b:4"}
	for _, tc := range []struct {
		typ   string
		attrs map[string]string
		want  []string
	}{
		{TypeImage, map[string]string{"name": "app:1"}, []string{"app:1", "app:2", "a:3", "b:4"}},
		{TypeRegistry, nil, []string{"app:2", "a:3", "b:4"}},
		{TypeDocker, map[string]string{"dest": "x.tar"}, []string{"app:2", "a:3", "b:4"}},
		{TypeOCI, map[string]string{"dest": "x.tar", "name": "o:1"}, []string{"o:1"}},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			e, err := parse(tc.typ, tc.attrs, deps)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			switch x := e.(type) {
			case *imageExporter:
				got = x.opts.Names
			case *tarballExporter:
				got = x.opts.Names
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("names (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLayoutOptions(t *testing.T) {
	t.Parallel()
	three := 3
	tests := []struct {
		name  string
		attrs map[string]string
		want  TarballOptions
		err   string
	}{
		{name: "none", want: TarballOptions{Tar: true, Format: ImageFormat{OCIMediaTypes: true}}},
		{
			name: "format and the program's own",
			attrs: map[string]string{
				"name": "app:1,app:2", "compression": "zstd", "compression-level": "3", "oci-mediatypes": "true",
				"rewrite-timestamp": "false", "annotation.a": "1", "dest": "/srv/app", "bucket": "b",
			},
			want: TarballOptions{Tar: true, Names: []string{"app:1", "app:2"}, Format: ImageFormat{
				Compression: layer.Compression{Type: layer.Zstd, Level: &three}, OCIMediaTypes: true, NoRewriteTimestamp: true,
				Annotations: []Annotation{{Target: AnnotateManifest, Key: "a", Value: "1"}},
			}},
		},
		{name: "docker media types", attrs: map[string]string{"oci-mediatypes": "false"}, want: TarballOptions{Tar: true}},
		{name: "bad compression", attrs: map[string]string{"compression": "lz4"}, err: "type=archive: compression=lz4: "},
		{name: "bad annotation", attrs: map[string]string{"annotation-blob.a": "b"}, err: `unknown annotation target "blob"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := LayoutOptions("archive", tt.attrs)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !errdefs.IsInvalidArgument(err) {
					t.Fatalf("error %v, want an invalid-argument error containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
			}
		})
	}
}
