package registry

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/cache/remote"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/registry"
)

func resolver(t *testing.T) *registry.Resolver {
	t.Helper()
	r, err := registry.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func layerRecord(key string, created time.Time, blobs ...string) (remote.Record, map[digest.Digest]string) {
	r := remote.Record{Key: digest.FromString(key), Created: created.UTC(), Writer: "w"}
	data := map[digest.Digest]string{}
	for _, b := range blobs {
		d := digest.FromString(b)
		data[d] = b
		r.Layers = append(r.Layers, remote.Layer{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: d, Size: int64(len(b)), DiffID: digest.FromString("tar " + b)})
	}
	return r, data
}

func TestCacheSaveAndLoad(t *testing.T) {
	ctx := context.Background()
	host := testutil.StartRegistry(t)
	r := resolver(t)
	ref, _ := name.ParseReference(host + "/cache/app:main")
	c := NewCache(r, ref, ocispec.Platform{OS: "linux", Architecture: "amd64"}, true)

	if recs, err := c.Records(ctx); err != nil || len(recs) != 0 {
		t.Fatalf("Records of a missing cache = %v, %v; want none", recs, err)
	}
	rec, data := layerRecord("k", time.Now(), "layer one", "layer two")
	for d, b := range data {
		if err := c.Blobs().Put(ctx, ocispec.Descriptor{Digest: d, Size: int64(len(b))}, strings.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Save(ctx, []remote.Record{rec}); err != nil {
		t.Fatal(err)
	}
	recs, blobs, err := c.Load(ctx)
	if err != nil || len(recs) != 1 || recs[0].Key != rec.Key {
		t.Fatalf("Load = %v, %v", recs, err)
	}
	l := rec.Layers[1]
	rc, err := blobs.Open(ctx, l.Descriptor())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "layer two" {
		t.Errorf("blob = %q", b)
	}
	if size, err := blobs.Stat(ctx, l.Digest); err != nil || size != l.Size {
		t.Errorf("Stat = %d, %v", size, err)
	}
	if _, err := blobs.Stat(ctx, digest.FromString("nope")); !errdefs.IsNotFound(err) {
		t.Errorf("Stat of a missing blob = %v", err)
	}

	// A blob copied to another repository of the same registry.
	other := &Blobs{r: r, repo: ref.Context().Registry.Repo("other", "repo")}
	if err := other.PutFrom(ctx, l.Descriptor(), blobs); err != nil {
		t.Fatal(err)
	}
	if size, err := other.Stat(ctx, l.Digest); err != nil || size != l.Size {
		t.Errorf("copied blob: %d, %v", size, err)
	}
	// The registry checks what is uploaded.
	err = other.Put(ctx, ocispec.Descriptor{Digest: digest.FromString("x"), Size: 1}, strings.NewReader("y"))
	if err == nil {
		t.Error("a blob whose bytes do not match its digest was accepted")
	}
}

func TestCacheRefusesToReplaceAnImage(t *testing.T) {
	ctx := context.Background()
	host := testutil.StartRegistry(t)
	img, err := random.Image(100, 1)
	if err != nil {
		t.Fatal(err)
	}
	testutil.PushImage(t, host+"/app:1", img)
	ref, _ := name.ParseReference(host + "/app:1")
	c := NewCache(resolver(t), ref, ocispec.Platform{OS: "linux", Architecture: "amd64"}, true)
	if _, err := c.Records(ctx); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "is an image, not a build cache") {
		t.Errorf("Records of an image = %v", err)
	}
	// As a --cache-from, an image without inline cache is a clear error.
	if _, _, err := c.Load(ctx); err == nil || !strings.Contains(err.Error(), "without inline cache") {
		t.Errorf("Load of an image without inline cache = %v", err)
	}
}

func TestExportMergesWriters(t *testing.T) {
	// Two builds export to one ref one after the other: the second keeps
	// the first's records.
	ctx := context.Background()
	host := testutil.StartRegistry(t)
	ref, _ := name.ParseReference(host + "/cache/app:main")
	c := NewCache(resolver(t), ref, ocispec.Platform{}, false)
	first, d1 := layerRecord("a", time.Now(), "a")
	second, d2 := layerRecord("b", time.Now(), "b")
	for _, data := range []map[digest.Digest]string{d1, d2} {
		for d, b := range data {
			if err := c.Blobs().Put(ctx, ocispec.Descriptor{Digest: d, Size: int64(len(b))}, bytes.NewReader([]byte(b))); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, r := range []remote.Record{first, second} {
		cur, err := c.Records(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Save(ctx, remote.Merge(cur, []remote.Record{r})); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.Records(ctx)
	if err != nil || len(got) != 2 {
		t.Errorf("records after two writers: %v, %v", got, err)
	}
}

func TestCacheOnDistribution(t *testing.T) {
	// The real distribution server validates manifests more strictly than
	// the in-process registry: both media type sets must pass.
	d := testutil.StartDistribution(t, testutil.DistributionOptions{})
	ctx := context.Background()
	hosts := map[string]registry.HostConfig{d.Host: {PlainHTTP: true}}
	r, err := registry.New(hosts)
	if err != nil {
		t.Fatal(err)
	}
	for _, oci := range []bool{true, false} {
		ref, _ := name.ParseReference(d.Ref("cache/app:oci-" + map[bool]string{true: "yes", false: "no"}[oci]))
		c := NewCache(r, ref, ocispec.Platform{}, oci)
		rec, data := layerRecord("k", time.Now(), "blob one")
		for dg, b := range data {
			if err := c.Blobs().Put(ctx, ocispec.Descriptor{Digest: dg, Size: int64(len(b))}, strings.NewReader(b)); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Save(ctx, []remote.Record{rec}); err != nil {
			t.Fatalf("oci=%v: Save: %v", oci, err)
		}
		got, err := c.Records(ctx)
		if err != nil || len(got) != 1 || got[0].Key != rec.Key {
			t.Errorf("oci=%v: Records = %v, %v", oci, got, err)
		}
	}
}
