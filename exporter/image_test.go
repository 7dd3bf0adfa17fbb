package exporter

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/content"
	"github.com/kiln-build/kiln/core/labels"
	"github.com/kiln-build/kiln/layer"
	"github.com/kiln-build/kiln/snapshot"
)

// loadImage reads an exported manifest back from the content store.
func (f *fixture) loadImage(t testing.TB, desc ocispec.Descriptor) (*contentImage, ocispec.Manifest, ocispec.Image) {
	t.Helper()
	ctx := context.Background()
	raw, err := content.ReadBlob(ctx, f.cs, desc)
	if err != nil {
		t.Fatal(err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	craw, err := content.ReadBlob(ctx, f.cs, m.Config)
	if err != nil {
		t.Fatal(err)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(craw, &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		t.Fatalf("config has %d diff IDs, manifest %d layers", len(cfg.RootFS.DiffIDs), len(m.Layers))
	}
	layers := make([]v1.Layer, len(m.Layers))
	for i, l := range m.Layers {
		layers[i] = layer.ContentLayer(ctx, f.cs, l, cfg.RootFS.DiffIDs[i])
	}
	img, err := newContentImage(raw, desc.MediaType, craw, layers)
	if err != nil {
		t.Fatal(err)
	}
	return img, m, cfg
}

// loadIndex reads an exported index and its images back.
func (f *fixture) loadIndex(t testing.TB, desc ocispec.Descriptor) (*contentIndex, ocispec.Index) {
	t.Helper()
	raw, err := content.ReadBlob(context.Background(), f.cs, desc)
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(raw, &idx); err != nil {
		t.Fatal(err)
	}
	var imgs []*contentImage
	for _, d := range idx.Manifests {
		img, _, _ := f.loadImage(t, d)
		imgs = append(imgs, img)
	}
	ci, err := newContentIndex(raw, desc.MediaType, imgs)
	if err != nil {
		t.Fatal(err)
	}
	return ci, idx
}

// diffIDOf diffs a snapshot independently of the exporter.
func (f *fixture) diffIDOf(t testing.TB, name string) digest.Digest {
	t.Helper()
	d, _, err := snapshot.Diff(context.Background(), f.sn, name, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func responseTarget(t testing.TB, resp Response) ocispec.Descriptor {
	t.Helper()
	var desc ocispec.Descriptor
	if err := json.Unmarshal([]byte(resp[KeyDescriptor]), &desc); err != nil {
		t.Fatalf("descriptor %q: %v", resp[KeyDescriptor], err)
	}
	if desc.Digest.String() != resp[KeyDigest] {
		t.Fatalf("descriptor digest %s, %s says %s", desc.Digest, KeyDigest, resp[KeyDigest])
	}
	return desc
}

func TestExportImage(t *testing.T) {
	t.Parallel()
	ociGzip := []string{ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayerGzip}
	tests := []struct {
		name          string
		attrs         map[string]string
		wantManifest  string
		wantConfig    string
		wantLayers    []string
		baseReused    bool // the pulled blob, byte for byte
		newCompressed string
	}{
		{"gzip", nil, ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageConfig, ociGzip, true, layer.Gzip},
		{"zstd keeps the gzip base layer", map[string]string{"compression": "zstd"}, ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageConfig,
			[]string{ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayerZstd, ocispec.MediaTypeImageLayerZstd}, true, layer.Zstd},
		{"zstd forced", map[string]string{"compression": "zstd", "force-compression": "true", "compression-level": "3"}, ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageConfig,
			[]string{ocispec.MediaTypeImageLayerZstd, ocispec.MediaTypeImageLayerZstd, ocispec.MediaTypeImageLayerZstd}, false, layer.Zstd},
		{"uncompressed", map[string]string{"compression": "uncompressed"}, ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageConfig,
			[]string{ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayer, ocispec.MediaTypeImageLayer}, true, layer.Uncompressed},
		{"gzip level 1", map[string]string{"compression-level": "1"}, ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageConfig, ociGzip, true, layer.Gzip},
		{"docker media types", map[string]string{"oci-mediatypes": "false"}, mediaDockerManifest, mediaDockerConfig,
			[]string{layer.DockerLayerGzip, layer.DockerLayerGzip, layer.DockerLayerGzip}, true, layer.Gzip},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := newFixture(t, "docker.io/library/busybox")
			res, news := f.result3(t)
			attrs := map[string]string{"name": "app:1,reg.local:5000/team/app"}
			for k, v := range tc.attrs {
				attrs[k] = v
			}
			e, err := parse(TypeImage, attrs, f.deps())
			if err != nil {
				t.Fatal(err)
			}
			resp, err := e.Export(ctx, res)
			if err != nil {
				t.Fatal(err)
			}
			target := responseTarget(t, resp)
			if target.MediaType != tc.wantManifest {
				t.Errorf("target media type %s, want %s", target.MediaType, tc.wantManifest)
			}
			if resp[KeyImageName] != "app:1,reg.local:5000/team/app" {
				t.Errorf("%s = %q", KeyImageName, resp[KeyImageName])
			}
			for _, n := range []string{"app:1", "reg.local:5000/team/app:latest"} {
				stored, err := f.images.Get(ctx, n)
				if err != nil {
					t.Fatalf("image store: %v", err)
				}
				if stored.Target.Digest != target.Digest {
					t.Errorf("%s stored as %s, exported %s", n, stored.Target.Digest, target.Digest)
				}
			}

			img, m, cfg := f.loadImage(t, target)
			validateImage(t, img)
			if m.Config.MediaType != tc.wantConfig || m.Config.Digest.String() != resp[KeyConfigDigest] {
				t.Errorf("config %s %s, want %s %s", m.Config.MediaType, m.Config.Digest, tc.wantConfig, resp[KeyConfigDigest])
			}
			var gotLayers []string
			for _, l := range m.Layers {
				gotLayers = append(gotLayers, l.MediaType)
			}
			if diff := cmp.Diff(tc.wantLayers, gotLayers); diff != "" {
				t.Errorf("layer media types (-want +got):\n%s", diff)
			}
			wantDiffIDs := []digest.Digest{f.baseDiffID, f.diffIDOf(t, news[0]), f.diffIDOf(t, news[1])}
			if diff := cmp.Diff(wantDiffIDs, cfg.RootFS.DiffIDs); diff != "" {
				t.Errorf("diff_ids (-want +got):\n%s", diff)
			}
			if got := m.Layers[0].Digest == f.baseLayer.Digest; got != tc.baseReused {
				t.Errorf("base layer %s, pulled blob %s: reused=%v, want %v", m.Layers[0].Digest, f.baseLayer.Digest, got, tc.baseReused)
			}
			if tc.newCompressed == layer.Uncompressed && m.Layers[1].Digest != wantDiffIDs[1] {
				t.Errorf("uncompressed layer digest %s != diffID %s", m.Layers[1].Digest, wantDiffIDs[1])
			}
			checkHistory(t, cfg, []string{f.baseConfig.History[0].CreatedBy, "COPY a.txt /app/", "COPY b.txt /app/"})
			hp := res.Images[0].Platform
			if cfg.OS != hp.OS || cfg.Architecture != hp.Architecture || cfg.Created == nil {
				t.Errorf("config platform %s/%s created %v", cfg.OS, cfg.Architecture, cfg.Created)
			}
			if diff := cmp.Diff(f.baseConfig.Config.Env, cfg.Config.Env); diff != "" {
				t.Errorf("config env (-want +got):\n%s", diff)
			}
		})
	}
}

// checkHistory checks that the non-empty history entries are, in order,
// wantLayers, and that every entry has a time.
func checkHistory(t testing.TB, cfg ocispec.Image, wantLayers []string) {
	t.Helper()
	var got []string
	for _, h := range cfg.History {
		if h.Created == nil {
			t.Errorf("history entry %q has no created time", h.CreatedBy)
		}
		if !h.EmptyLayer {
			got = append(got, h.CreatedBy)
		}
	}
	if diff := cmp.Diff(wantLayers, got); diff != "" {
		t.Errorf("layer history (-want +got):\n%s", diff)
	}
}

func TestExportReusesLabelledBlobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, "docker.io/library/busybox")
	res, news := f.result3(t)
	e, err := parse(TypeImage, map[string]string{"name": "app"}, f.deps())
	if err != nil {
		t.Fatal(err)
	}
	first, err := e.Export(ctx, res)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(news, f.diffd, sortStrings); diff != "" {
		t.Errorf("first export diffed (-want +got):\n%s", diff)
	}
	for _, n := range news {
		info, err := f.sn.Stat(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		if info.Labels[labels.DiffID] == "" || info.Labels[labels.Blob(layer.Gzip)] == "" {
			t.Errorf("snapshot %s not labelled after export: %v", n, info.Labels)
		}
	}
	second, err := e.Export(ctx, res)
	if err != nil {
		t.Fatal(err)
	}
	if n := f.diffs.Load(); n != 2 {
		t.Errorf("%d diffs after the second export, want 2 (no new ones)", n)
	}
	if first[KeyConfigDigest] != second[KeyConfigDigest] {
		// The created time differs between exports, so only the layers
		// must be equal.
		_, m1, _ := f.loadImage(t, responseTarget(t, first))
		_, m2, _ := f.loadImage(t, responseTarget(t, second))
		if diff := cmp.Diff(m1.Layers, m2.Layers); diff != "" {
			t.Errorf("layers differ between exports (-first +second):\n%s", diff)
		}
	}

	// A blob the content store lost (gc) is made again.
	info, _ := f.sn.Stat(ctx, news[1])
	lost, err := layer.ParseBlobLabel(info.Labels[labels.Blob(layer.Gzip)])
	if err != nil {
		t.Fatal(err)
	}
	if err := f.cs.Delete(ctx, lost.Digest); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Export(ctx, res); err != nil {
		t.Fatal(err)
	}
	if n := f.diffs.Load(); n != 3 {
		t.Errorf("%d diffs after losing one blob, want 3", n)
	}
	if ok, _ := content.Exists(ctx, f.cs, lost.Digest); !ok {
		t.Errorf("blob %s was not made again", lost.Digest)
	}
}

var sortStrings = cmpSortStrings()

func TestExportEmptyAndMetadataOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, "docker.io/library/busybox")
	empty := f.commit(t, f.baseName, nil) // a RUN that changed nothing
	tests := []struct {
		name       string
		img        Image
		wantLayers int
		wantHist   []string
	}{
		{"scratch", Image{Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}, Config: ocispec.Image{
			History: []ocispec.History{{CreatedBy: "LABEL a=b", EmptyLayer: true}},
		}}, 0, nil},
		{"empty layer kept", f.image(empty, ocispec.Platform{}, "RUN true"), 2, []string{f.baseConfig.History[0].CreatedBy, "RUN true"}},
		{"history short of layers", func() Image {
			img := f.image(empty, ocispec.Platform{})
			img.Config.History = nil
			return img
		}(), 2, []string{"layer 1", "layer 2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := NewImage(f.deps(), ImageOptions{Format: ImageFormat{OCIMediaTypes: true}})
			if err != nil {
				t.Fatal(err)
			}
			resp, err := e.Export(ctx, Result{Images: []Image{tc.img}})
			if err != nil {
				t.Fatal(err)
			}
			img, m, cfg := f.loadImage(t, responseTarget(t, resp))
			validateImage(t, img)
			if len(m.Layers) != tc.wantLayers {
				t.Errorf("%d layers, want %d", len(m.Layers), tc.wantLayers)
			}
			checkHistory(t, cfg, tc.wantHist)
		})
	}
}

func TestExportBadResult(t *testing.T) {
	t.Parallel()
	deps := Deps{Layers: layer.NewMaker(nil, nil)}
	host := ocispec.Platform{OS: "linux", Architecture: "amd64"}
	tests := []struct {
		name string
		res  Result
		want string
	}{
		{"no images", Result{}, "no image"},
		{"no platform", Result{Images: []Image{{}}}, "os and architecture must be set"},
		{"duplicate platform", Result{Images: []Image{{Platform: host}, {Platform: host}}}, "two images for platform linux/amd64"},
		{"not a snapshot", Result{Images: []Image{{Platform: host, Ref: &dirRef{dir: "/"}}}}, "not a snapshot"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := NewImage(deps, ImageOptions{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = e.Export(context.Background(), tc.res)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Export error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
