package imagestore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/kiln-build/kiln/content"
	"github.com/kiln-build/kiln/core/errdefs"
)

type fixture struct {
	s    *Store
	cs   content.Store
	db   *bolt.DB
	path string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	cs, err := content.Open(filepath.Join(dir, "content"))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{cs: cs, path: filepath.Join(dir, "metadata.db")}
	f.open(t)
	return f
}

func (f *fixture) open(t *testing.T) {
	t.Helper()
	db, err := bolt.Open(f.path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := New(db, f.cs)
	if err != nil {
		t.Fatal(err)
	}
	f.s, f.db = s, db
}

// blob writes b to the content store and returns its descriptor.
func (f *fixture) blob(t *testing.T, mt string, b []byte) ocispec.Descriptor {
	t.Helper()
	d := ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(b), Size: int64(len(b))}
	if err := content.WriteBlob(context.Background(), f.cs, "", bytes.NewReader(b), d); err != nil {
		t.Fatal(err)
	}
	return d
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// manifest stores a config, one layer and a manifest and returns the
// manifest's descriptor and every digest involved.
func (f *fixture) manifest(t *testing.T, seed string) (ocispec.Descriptor, []digest.Digest) {
	t.Helper()
	cfg := f.blob(t, ocispec.MediaTypeImageConfig, []byte(`{"architecture":"amd64","os":"linux","seed":"`+seed+`"}`))
	layer := f.blob(t, ocispec.MediaTypeImageLayerGzip, []byte("layer "+seed))
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: []ocispec.Descriptor{layer}}
	m.SchemaVersion = 2
	md := f.blob(t, ocispec.MediaTypeImageManifest, mustJSON(t, m))
	return md, []digest.Digest{md.Digest, cfg.Digest, layer.Digest}
}

func TestPutGetListDelete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	md, _ := f.manifest(t, "a")
	t0 := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	f.s.now = func() time.Time { return t0 }

	if err := f.s.Put(ctx, Image{Name: "my-hello-app", Target: md, Labels: map[string]string{"k": "v"}}); err != nil {
		t.Fatal(err)
	}
	want := Image{Name: "docker.io/library/my-hello-app:latest", Target: md, Created: t0, Updated: t0, Labels: map[string]string{"k": "v"}}
	for _, name := range []string{"my-hello-app", "my-hello-app:latest", "docker.io/library/my-hello-app:latest", "index.docker.io/library/my-hello-app"} {
		got, err := f.s.Get(ctx, name)
		if err != nil {
			t.Fatalf("Get(%q): %v", name, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Get(%q) (-want +got):\n%s", name, diff)
		}
	}
	byDigest, err := f.s.Get(ctx, "my-hello-app@"+md.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	if byDigest.Name != want.Name {
		t.Errorf("Get by digest = %s, want %s", byDigest.Name, want.Name)
	}

	// A second Put keeps Created and moves Updated.
	t1 := t0.Add(time.Hour)
	f.s.now = func() time.Time { return t1 }
	md2, _ := f.manifest(t, "b")
	if err := f.s.Put(ctx, Image{Name: "my-hello-app", Target: md2}); err != nil {
		t.Fatal(err)
	}
	got, err := f.s.Get(ctx, "my-hello-app")
	if err != nil {
		t.Fatal(err)
	}
	if got.Created != t0 || got.Updated != t1 || got.Target.Digest != md2.Digest || got.Labels != nil {
		t.Errorf("after re-Put: %+v", got)
	}

	if _, err := f.s.Tag(ctx, "my-hello-app", "reg.local:5000/team/app:v1"); err != nil {
		t.Fatal(err)
	}
	list, err := f.s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, img := range list {
		names = append(names, img.Name)
		if img.Target.Digest != md2.Digest {
			t.Errorf("%s targets %s, want %s", img.Name, img.Target.Digest, md2.Digest)
		}
	}
	if diff := cmp.Diff([]string{"docker.io/library/my-hello-app:latest", "reg.local:5000/team/app:v1"}, names); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}

	if err := f.s.Delete(ctx, "my-hello-app"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.Get(ctx, "my-hello-app"); !errdefs.IsNotFound(err) {
		t.Errorf("Get after Delete: %v, want not found", err)
	}
	if err := f.s.Delete(ctx, "my-hello-app"); !errdefs.IsNotFound(err) {
		t.Errorf("second Delete: %v, want not found", err)
	}
	if _, err := f.s.Get(ctx, "reg.local:5000/team/app:v1"); err != nil {
		t.Errorf("the other tag went too: %v", err)
	}
}

func TestPersistsAcrossReopen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	md, _ := f.manifest(t, "a")
	if err := f.s.Put(ctx, Image{Name: "app:1", Target: md}); err != nil {
		t.Fatal(err)
	}
	if err := f.db.Close(); err != nil {
		t.Fatal(err)
	}
	f.open(t)
	got, err := f.s.Get(ctx, "app:1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Target.Digest != md.Digest {
		t.Errorf("after reopen: target %s, want %s", got.Target.Digest, md.Digest)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	md, _ := f.manifest(t, "a")
	missing := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("nope"), Size: 10}
	layer := f.blob(t, ocispec.MediaTypeImageLayerGzip, []byte("x"))

	tests := []struct {
		name  string
		do    func() error
		class error
		msg   string
	}{
		{"get missing", func() error { _, err := f.s.Get(ctx, "nothere"); return err }, errdefs.ErrNotFound, "image nothere:latest: no such image"},
		{"get by unknown digest", func() error { _, err := f.s.Get(ctx, "app@"+digest.FromString("x").String()); return err }, errdefs.ErrNotFound, "no such image"},
		{"bad name", func() error { _, err := f.s.Get(ctx, "Bad Name"); return err }, errdefs.ErrInvalidArgument, `invalid image reference "Bad Name"`},
		{"put digest name", func() error { return f.s.Put(ctx, Image{Name: "app@" + md.Digest.String(), Target: md}) }, errdefs.ErrInvalidArgument, "is a tag, not a digest"},
		{"put missing blob", func() error { return f.s.Put(ctx, Image{Name: "app", Target: missing}) }, errdefs.ErrFailedPrecondition, "is not in the content store"},
		{"put layer as target", func() error { return f.s.Put(ctx, Image{Name: "app", Target: layer}) }, errdefs.ErrInvalidArgument, "is not an image manifest or index"},
		{"put empty digest", func() error { return f.s.Put(ctx, Image{Name: "app"}) }, errdefs.ErrInvalidArgument, "target digest"},
		{"tag missing", func() error { _, err := f.s.Tag(ctx, "nothere", "app"); return err }, errdefs.ErrNotFound, "no such image"},
		{"delete bad name", func() error { return f.s.Delete(ctx, "UPPER") }, errdefs.ErrInvalidArgument, "invalid image reference"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.do()
			if !errors.Is(err, tt.class) {
				t.Fatalf("err = %v, want class %v", err, tt.class)
			}
			if !bytes.Contains([]byte(err.Error()), []byte(tt.msg)) {
				t.Errorf("err = %q, want it to contain %q", err, tt.msg)
			}
		})
	}
}

func TestReferenced(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	m1, d1 := f.manifest(t, "amd64")
	m2, d2 := f.manifest(t, "arm64")
	m3, _ := f.manifest(t, "unreferenced")
	absent := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("absent child"), Size: 3}
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{m1, m2, absent}}
	idx.SchemaVersion = 2
	id := f.blob(t, ocispec.MediaTypeImageIndex, mustJSON(t, idx))
	if err := f.s.Put(ctx, Image{Name: "multi", Target: id}); err != nil {
		t.Fatal(err)
	}
	if err := f.s.Put(ctx, Image{Name: "single", Target: m1}); err != nil {
		t.Fatal(err)
	}
	got, err := f.s.Referenced(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := append(append([]digest.Digest{id.Digest, absent.Digest}, d1...), d2...)
	var gotList []digest.Digest
	for d := range got {
		gotList = append(gotList, d)
	}
	sortDigests := cmpopts.SortSlices(func(a, b digest.Digest) bool { return a < b })
	if diff := cmp.Diff(want, gotList, sortDigests); diff != "" {
		t.Errorf("Referenced (-want +got):\n%s", diff)
	}
	if _, ok := got[m3.Digest]; ok {
		t.Error("an unreferenced manifest is a gc root")
	}

}

func TestNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, full, familiar string
	}{
		{"my-hello-app", "docker.io/library/my-hello-app:latest", "my-hello-app:latest"},
		{"busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"},
		{"user/app", "docker.io/user/app:latest", "user/app:latest"},
		{"index.docker.io/library/alpine:3", "docker.io/library/alpine:3", "alpine:3"},
		{"docker.io/library/team/app:1", "docker.io/library/team/app:1", "library/team/app:1"},
		{"localhost:5000/app", "localhost:5000/app:latest", "localhost:5000/app:latest"},
		{"127.0.0.1:5000/a/b:v2", "127.0.0.1:5000/a/b:v2", "127.0.0.1:5000/a/b:v2"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			full, err := NormalizeName(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if full != tt.full {
				t.Errorf("NormalizeName(%q) = %q, want %q", tt.in, full, tt.full)
			}
			if got := FamiliarName(full); got != tt.familiar {
				t.Errorf("FamiliarName(%q) = %q, want %q", full, got, tt.familiar)
			}
		})
	}
	d := "sha256:" + digest.FromString("x").Encoded()
	if got := FamiliarName("docker.io/library/busybox@" + d); got != "busybox@"+d {
		t.Errorf("FamiliarName of a digest ref = %q", got)
	}
	if got := FamiliarName("not a ref"); got != "not a ref" {
		t.Errorf("FamiliarName of garbage = %q", got)
	}
}
