package exporter

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

type tarEntry struct {
	hdr  *tar.Header
	data []byte
}

// readTar lists a tar stream's entries in order.
func readTar(t testing.TB, data []byte) []tarEntry {
	t.Helper()
	var out []tarEntry
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tarEntry{hdr: hdr, data: b})
	}
}

func entryNames(es []tarEntry) []string {
	var names []string
	for _, e := range es {
		names = append(names, e.hdr.Name)
	}
	return names
}

// untar writes the regular files and directories of a tar under dir.
func untar(t testing.TB, data []byte, dir string) {
	t.Helper()
	for _, e := range readTar(t, data) {
		p := filepath.Join(dir, filepath.FromSlash(e.hdr.Name))
		if !strings.HasPrefix(p, dir) {
			t.Fatalf("entry %q leaves the directory", e.hdr.Name)
		}
		switch e.hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, e.data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestExportOCITarball(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, "docker.io/library/busybox")
	res, _ := f.result3(t)
	var w bufWriter
	deps := f.writerDeps(&w)
	res.Created = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	e, err := parse(TypeOCI, map[string]string{"dest": "-", "name": "app:1,reg.local:5000/x/y:2", "annotation-index.k": "v"}, deps)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := e.Export(ctx, res)
	if err != nil {
		t.Fatal(err)
	}
	if !w.closed || w.err != nil {
		t.Fatalf("writer closed=%v err=%v", w.closed, w.err)
	}
	entries := readTar(t, w.Bytes())
	names := entryNames(entries)
	if names[0] != "oci-layout" || names[len(names)-1] != "index.json" {
		t.Errorf("entries %v: want oci-layout first and index.json last", names)
	}
	// 3 layers, config, manifest, plus oci-layout, 2 dirs and index.json.
	if len(names) != 9 {
		t.Errorf("%d entries, want 9: %v", len(names), names)
	}

	dir := t.TempDir()
	untar(t, w.Bytes(), dir)
	lp, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var gotNames [][2]string
	for _, d := range im.Manifests {
		if d.Digest.String() != resp[KeyDigest] {
			t.Errorf("index.json names %s, exported %s", d.Digest, resp[KeyDigest])
		}
		gotNames = append(gotNames, [2]string{d.Annotations["io.containerd.image.name"], d.Annotations[ocispec.AnnotationRefName]})
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		validateImage(t, img)
	}
	wantNames := [][2]string{{"docker.io/library/app:1", "1"}, {"reg.local:5000/x/y:2", "2"}}
	if diff := cmp.Diff(wantNames, gotNames); diff != "" {
		t.Errorf("index.json names (-want +got):\n%s", diff)
	}
	if im.Annotations["k"] != "v" {
		t.Errorf("index.json annotations %v, want k=v", im.Annotations)
	}

	// The same result exported again (same time) is the same tarball.
	var again bufWriter
	deps.Writer = func() (io.WriteCloser, error) { return &again, nil }
	e, _ = parse(TypeOCI, map[string]string{"dest": "-", "name": "app:1,reg.local:5000/x/y:2", "annotation-index.k": "v"}, deps)
	if _, err := e.Export(ctx, res); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(w.Bytes(), again.Bytes()) {
		t.Errorf("a second export gave another tarball: %v vs %v", names, entryNames(readTar(t, again.Bytes())))
	}
}

func TestExportDockerTarball(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, "docker.io/library/busybox")
	res, _ := f.result3(t)
	var w bufWriter
	e, err := parse(TypeDocker, map[string]string{"dest": "img.tar", "name": "app:1,reg.local:5000/x/y"}, f.writerDeps(&w))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := e.Export(ctx, res)
	if err != nil {
		t.Fatal(err)
	}
	entries := readTar(t, w.Bytes())
	files := map[string][]byte{}
	for _, en := range entries {
		files[en.hdr.Name] = en.data
	}
	for _, n := range []string{"manifest.json", "repositories", "index.json", "oci-layout"} {
		if _, ok := files[n]; !ok {
			t.Errorf("no %s in %v", n, entryNames(entries))
		}
	}
	var repos map[string]map[string]string
	if err := json.Unmarshal(files["repositories"], &repos); err != nil {
		t.Fatal(err)
	}
	if repos["app"]["1"] == "" || repos["reg.local:5000/x/y"]["latest"] == "" {
		t.Errorf("repositories %v", repos)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(files["index.json"], &idx); err != nil {
		t.Fatal(err)
	}
	if idx.Manifests[0].MediaType != mediaDockerManifest {
		t.Errorf("manifest media type %s, want Docker's", idx.Manifests[0].MediaType)
	}

	opener := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(w.Bytes())), nil }
	for _, tag := range []string{"app:1", "reg.local:5000/x/y:latest"} {
		tg, err := name.NewTag(tag)
		if err != nil {
			t.Fatal(err)
		}
		img, err := tarball.Image(opener, &tg)
		if err != nil {
			t.Fatalf("tarball.Image(%s): %v", tag, err)
		}
		validateImage(t, img)
		cfgName, err := img.ConfigName()
		if err != nil {
			t.Fatal(err)
		}
		if cfgName.String() != resp[KeyConfigDigest] {
			t.Errorf("loaded config %s, exported %s", cfgName, resp[KeyConfigDigest])
		}
		ls, _ := img.Layers()
		if len(ls) != 3 {
			t.Errorf("%d layers, want 3", len(ls))
		}
	}

	// One platform only.
	two := Result{Images: []Image{res.Images[0], res.Images[0]}}
	two.Images[1].Platform.Architecture = "s390x"
	if _, err := e.Export(ctx, two); err == nil || !strings.Contains(err.Error(), "use type=oci") {
		t.Errorf("docker export of two platforms: %v", err)
	}
}

// multiResult is result3's filesystem for amd64 and a second one (another
// file) for arm64, with variant v8.
func (f *fixture) multiResult(t testing.TB) Result {
	t.Helper()
	res, news := f.result3(t)
	arm := f.commit(t, news[0], map[string]string{"app/arm.txt": "arm\n"})
	res.Images[0].Platform = ocispec.Platform{OS: "linux", Architecture: "amd64"}
	res.Images = append(res.Images, f.image(arm, ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, "COPY a.txt /app/", "COPY arm.txt /app/"))
	return res
}

func TestExportMultiPlatform(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, "docker.io/library/busybox")
	res := f.multiResult(t)
	for _, oci := range []bool{true, false} {
		var w bufWriter
		deps := f.writerDeps(&w)
		format := ImageFormat{OCIMediaTypes: oci}
		if oci {
			format.Annotations = []Annotation{
				{Target: AnnotateIndex, Key: "i", Value: "1"},
				{Target: AnnotateManifest, Platform: &ocispec.Platform{OS: "linux", Architecture: "arm64"}, Key: "m", Value: "arm"},
				{Target: AnnotateManifestDescriptor, Key: "d", Value: "2"},
			}
		}
		img, err := NewImage(deps, ImageOptions{Names: []string{"multi:1"}, Store: true, Format: format})
		if err != nil {
			t.Fatal(err)
		}
		tb, err := NewTarball(deps, TarballOptions{Format: format})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := Multi(img, tb).Export(ctx, res)
		if err != nil {
			t.Fatal(err)
		}
		target := responseTarget(t, resp)
		if _, ok := resp[KeyConfigDigest]; ok {
			t.Errorf("a multi-platform export has a config digest in its response")
		}
		if target.MediaType != indexMediaType(oci) {
			t.Errorf("target %s, want an index", target.MediaType)
		}
		ci, idx := f.loadIndex(t, target)
		validateIndex(t, ci)
		var plats []string
		for _, d := range idx.Manifests {
			plats = append(plats, platformString(*d.Platform))
			_, m, cfg := f.loadImage(t, d)
			if platformString(cfg.Platform) != platformString(*d.Platform) {
				t.Errorf("config platform %s in the index as %s", platformString(cfg.Platform), platformString(*d.Platform))
			}
			if oci {
				want := map[string]string(nil)
				if d.Platform.Architecture == "arm64" {
					want = map[string]string{"m": "arm"}
				}
				if diff := cmp.Diff(want, m.Annotations); diff != "" {
					t.Errorf("%s manifest annotations (-want +got):\n%s", d.Platform.Architecture, diff)
				}
				if d.Annotations["d"] != "2" {
					t.Errorf("manifest descriptor annotations %v", d.Annotations)
				}
			}
		}
		if diff := cmp.Diff([]string{"linux/amd64", "linux/arm64/v8"}, plats); diff != "" {
			t.Errorf("index platforms (-want +got):\n%s", diff)
		}
		if oci && idx.Annotations["i"] != "1" {
			t.Errorf("index annotations %v", idx.Annotations)
		}

		dir := t.TempDir()
		untar(t, w.Bytes(), dir)
		lp, err := layout.FromPath(dir)
		if err != nil {
			t.Fatal(err)
		}
		outer, err := lp.ImageIndex()
		if err != nil {
			t.Fatal(err)
		}
		inner, err := outer.ImageIndex(v1.Hash{Algorithm: "sha256", Hex: target.Digest.Encoded()})
		if err != nil {
			t.Fatal(err)
		}
		validateIndex(t, inner)
	}
}

// TestMultiSharesLayerWork exports one result to three outputs at once,
// twice in parallel: each new layer is diffed and compressed once.
func TestMultiSharesLayerWork(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, "docker.io/library/busybox")
	res, news := f.result3(t)
	mk := func() (Exporter, *bufWriter, *bufWriter) {
		var oci, docker bufWriter
		img, err := parse(TypeImage, map[string]string{"name": "app"}, f.deps())
		if err != nil {
			t.Fatal(err)
		}
		o, err := parse(TypeOCI, map[string]string{"dest": "-"}, f.writerDeps(&oci))
		if err != nil {
			t.Fatal(err)
		}
		d, err := parse(TypeDocker, map[string]string{"name": "app"}, f.writerDeps(&docker))
		if err != nil {
			t.Fatal(err)
		}
		return Multi(img, o, d), &oci, &docker
	}
	type out struct {
		resp        Response
		err         error
		oci, docker *bufWriter
	}
	outs := make(chan out, 2)
	for range 2 {
		e, oci, docker := mk()
		go func() {
			resp, err := e.Export(ctx, res)
			outs <- out{resp, err, oci, docker}
		}()
	}
	for range 2 {
		o := <-outs
		if o.err != nil {
			t.Fatal(o.err)
		}
		if o.resp[KeyDigest] == "" || o.resp[KeyImageName] != "app" {
			t.Errorf("response %v", o.resp)
		}
		// The image and oci outputs of one Multi describe one image (the
		// docker output has other media types, so another digest).
		for _, w := range []*bufWriter{o.oci} {
			var idx ocispec.Index
			for _, en := range readTar(t, w.Bytes()) {
				if en.hdr.Name == "index.json" {
					if err := json.Unmarshal(en.data, &idx); err != nil {
						t.Fatal(err)
					}
				}
			}
			if len(idx.Manifests) != 1 || idx.Manifests[0].Digest.String() != o.resp[KeyDigest] {
				t.Errorf("tarball holds %v, the response says %s", idx.Manifests, o.resp[KeyDigest])
			}
		}
	}
	if diff := cmp.Diff(news, f.diffd, sortStrings); diff != "" {
		t.Errorf("diffed (-want +got):\n%s", diff)
	}
}
