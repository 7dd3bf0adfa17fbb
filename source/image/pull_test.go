package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/core/labels"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/snapshot"
)

// tarOf returns a layer tar holding files (path → content), in path order.
func tarOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		hdr := &tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(files[n])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// layerOf returns a layer with files, compressed as mt says.
func layerOf(t *testing.T, mt types.MediaType, files map[string]string) *memLayer {
	t.Helper()
	raw := tarOf(t, files)
	var c bytes.Buffer
	switch {
	case strings.HasSuffix(string(mt), "gzip"):
		zw := gzip.NewWriter(&c)
		if _, err := zw.Write(raw); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	case strings.HasSuffix(string(mt), "zstd"):
		zw, err := zstd.NewWriter(&c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := zw.Write(raw); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	default:
		c.Write(raw)
	}
	return &memLayer{compressed: c.Bytes(), uncompressed: raw, mt: mt}
}

// imageOf stacks layers on base (an OCI or Docker manifest per mt).
func imageOf(t *testing.T, base v1.Image, layers ...v1.Layer) v1.Image {
	t.Helper()
	img := base
	if img == nil {
		img = mutate.MediaType(empty.Image, types.OCIManifestSchema1)
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
		var err error
		if img, err = mutate.ConfigFile(img, &v1.ConfigFile{OS: "linux", Architecture: "amd64"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range layers {
		var err error
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

// readFile reads path from the snapshot name.
func readFile(t *testing.T, e *env, name, path string) (string, error) {
	t.Helper()
	var got []byte
	err := snapshot.WithView(t.Context(), e.sn, name, func(dir string) error {
		var err error
		got, err = os.ReadFile(filepath.Join(dir, path))
		return err
	})
	return string(got), err
}

func TestPullBusybox(t *testing.T) {
	needRoot(t)
	t.Parallel()
	s := startServer(t)
	img := testutil.BusyboxImage(t, testutil.HostPlatform())
	s.push(t, "busybox:1", img)
	e := newEnv(t, nil)

	var mu sync.Mutex
	var events []Progress
	got, err := e.p.Pull(t.Context(), s.host+"/busybox:1", ocispec.Platform{}, WithProgress(func(p Progress) {
		mu.Lock()
		events = append(events, p)
		mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	l := layers[0]
	ld, _ := l.Digest()
	diffID, _ := l.DiffID()
	size, _ := l.Size()
	if got.Ref != s.host+"/busybox:1@"+imageDigest(t, img).String() || got.ChainID != diffID.String() || len(got.Layers) != 1 {
		t.Errorf("Pull = Ref %s ChainID %s, %d layers", got.Ref, got.ChainID, len(got.Layers))
	}
	if err := snapshot.WithView(t.Context(), e.sn, got.ChainID, func(dir string) error {
		fi, err := os.Stat(filepath.Join(dir, "bin", "busybox"))
		if err == nil && fi.Mode()&0o111 == 0 {
			err = fmt.Errorf("/bin/busybox is not executable: %v", fi.Mode())
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	info, err := e.sn.Stat(t.Context(), got.ChainID)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		labels.DiffID:       diffID.String(),
		labels.Blob("gzip"): fmt.Sprintf("%s|%s|%d", types.OCILayer, ld, size),
		labels.Source:       s.host + "/busybox",
	}
	if diff := cmp.Diff(want, info.Labels); diff != "" {
		t.Errorf("snapshot labels (-want +got):\n%s", diff)
	}
	var statuses []string
	for _, ev := range events {
		if ev.Layer.String() != ld.String() {
			t.Errorf("progress for %s, want only %s", ev.Layer, ld)
		}
		if len(statuses) == 0 || statuses[len(statuses)-1] != ev.Status {
			statuses = append(statuses, ev.Status)
		}
	}
	if diff := cmp.Diff([]string{StatusDownloading, StatusDownloaded, StatusExtracted}, statuses); diff != "" {
		t.Errorf("progress statuses (-want +got):\n%s", diff)
	}

	// A second pull finds the snapshot and fetches nothing.
	s.resetCounts()
	again, err := e.p.Pull(t.Context(), got.Ref, ocispec.Platform{})
	if err != nil {
		t.Fatal(err)
	}
	if again.ChainID != got.ChainID || s.blobGets(ld) != 0 {
		t.Errorf("second pull: chain %s, %d blob GETs", again.ChainID, s.blobGets(ld))
	}
}

func TestPullCompressions(t *testing.T) {
	needRoot(t)
	t.Parallel()
	s := startServer(t)
	e := newEnv(t, nil)
	tests := []struct {
		mt   types.MediaType
		comp string
	}{
		{types.OCILayer, "gzip"},
		{types.DockerLayer, "gzip"},
		{types.OCILayerZStd, "zstd"},
		{dockerLayerZstd, "zstd"},
		{types.OCIUncompressedLayer, "uncompressed"},
		{types.DockerUncompressedLayer, "uncompressed"},
	}
	for i, tt := range tests {
		t.Run(string(tt.mt), func(t *testing.T) {
			base := layerOf(t, tt.mt, map[string]string{"etc/base": "base " + string(tt.mt)})
			top := layerOf(t, tt.mt, map[string]string{"etc/top": "top", "etc/base": "replaced"})
			img := imageOf(t, nil, base, top)
			if strings.Contains(string(tt.mt), "docker") {
				img = mutate.MediaType(img, types.DockerManifestSchema2)
				img = mutate.ConfigMediaType(img, types.DockerConfigJSON)
			}
			s.push(t, fmt.Sprintf("comp%d:1", i), img)
			got, err := e.p.Pull(t.Context(), fmt.Sprintf("%s/comp%d:1", s.host, i), amd64)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.ChainIDs) != 2 {
				t.Fatalf("chain IDs %v", got.ChainIDs)
			}
			for path, want := range map[string]string{"etc/top": "top", "etc/base": "replaced"} {
				if s, err := readFile(t, e, got.ChainID, path); err != nil || s != want {
					t.Errorf("%s = %q, %v; want %q", path, s, err, want)
				}
			}
			if s, err := readFile(t, e, got.ChainIDs[0], "etc/base"); err != nil || s != "base "+string(tt.mt) {
				t.Errorf("bottom layer's etc/base = %q, %v", s, err)
			}
			info, err := e.sn.Stat(t.Context(), got.ChainID)
			if err != nil {
				t.Fatal(err)
			}
			td, _ := top.Digest()
			if want := fmt.Sprintf("%s|%s|%d", tt.mt, td, len(top.compressed)); info.Labels[labels.Blob(tt.comp)] != want {
				t.Errorf("labels %v, want %s=%s", info.Labels, labels.Blob(tt.comp), want)
			}
		})
	}
}

func TestPullRejects(t *testing.T) {
	needRoot(t)
	t.Parallel()
	s := startServer(t)
	e := newEnv(t, nil)

	encrypted := layerOf(t, "application/vnd.oci.image.layer.v1.tar+gzip+encrypted", map[string]string{"a": "a"})
	s.push(t, "encrypted:1", imageOf(t, nil, encrypted))

	// A layer whose tar is not what the config's diffID says.
	good := layerOf(t, types.OCILayer, map[string]string{"a": "a"})
	liar := &memLayer{compressed: good.compressed, uncompressed: tarOf(t, map[string]string{"b": "b"}), mt: types.OCILayer}
	s.push(t, "liar:1", imageOf(t, nil, liar))

	tests := []struct {
		ref   string
		class error
		msg   string
	}{
		{"encrypted:1", errdefs.ErrUnimplemented, `layer media type "application/vnd.oci.image.layer.v1.tar+gzip+encrypted" is not supported`},
		{"liar:1", errdefs.ErrFailedPrecondition, "layer tar has diffID"},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			_, err := e.p.Pull(t.Context(), s.host+"/"+tt.ref, amd64)
			t.Log(err)
			if !errors.Is(err, tt.class) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err = %v, want class %v containing %q", err, tt.class, tt.msg)
			}
		})
	}
}

func TestPullZeroLayers(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	e := newEnv(t, nil)
	s.push(t, "empty:1", imageOf(t, nil))
	got, err := e.p.Pull(t.Context(), s.host+"/empty:1", amd64)
	if err != nil {
		t.Fatal(err)
	}
	if got.ChainID != "" || len(got.Layers) != 0 {
		t.Errorf("empty image: chain %q, %d layers", got.ChainID, len(got.Layers))
	}
}

// TestPullOffline: a pinned reference whose blobs are local needs no
// registry, for resolving and for unpacking on a fresh snapshotter.
func TestPullOffline(t *testing.T) {
	needRoot(t)
	t.Parallel()
	s := startServer(t)
	img := testutil.BusyboxImage(t, testutil.HostPlatform())
	s.push(t, "busybox:1", img)
	e := newEnv(t, nil)
	first, err := e.p.Pull(t.Context(), s.host+"/busybox:1", amd64)
	if err != nil {
		t.Fatal(err)
	}
	s.srv.Close()

	res, err := e.p.ResolveImageConfig(t.Context(), first.Ref, amd64)
	if err != nil {
		t.Fatalf("resolve pinned with the registry down: %v", err)
	}
	if res.Ref != first.Ref {
		t.Errorf("resolved %s, want %s", res.Ref, first.Ref)
	}
	fresh := newEnvWith(t, t.TempDir(), e.cs, nil)
	got, err := fresh.p.Pull(t.Context(), first.Ref, amd64)
	if err != nil {
		t.Fatalf("pull pinned with the registry down: %v", err)
	}
	if _, err := readFile(t, fresh, got.ChainID, "etc/passwd"); err != nil {
		t.Error(err)
	}
	// A tag still needs the registry.
	_, err = fresh.p.Pull(t.Context(), s.host+"/busybox:1", amd64)
	if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), s.host) {
		t.Errorf("pull by tag with the registry down: %v", err)
	}
}

// TestPullSharedLayer: two images on one base download the base layer
// once, even from two repositories.
func TestPullSharedLayer(t *testing.T) {
	needRoot(t)
	t.Parallel()
	s := startServer(t)
	base := testutil.BusyboxImage(t, testutil.HostPlatform())
	a := imageOf(t, base, layerOf(t, types.OCILayer, map[string]string{"app/a": "a"}))
	b := imageOf(t, base, layerOf(t, types.OCILayerZStd, map[string]string{"app/b": "b"}))
	s.push(t, "a:1", a)
	s.push(t, "b:1", b)
	baseLayers, _ := base.Layers()
	shared, _ := baseLayers[0].Digest()

	for _, concurrent := range []bool{false, true} {
		t.Run(fmt.Sprintf("concurrent=%v", concurrent), func(t *testing.T) {
			s.resetCounts()
			e := newEnv(t, nil)
			pull := func(ref string) error {
				got, err := e.p.Pull(t.Context(), s.host+"/"+ref, amd64)
				if err == nil {
					_, err = readFile(t, e, got.ChainID, "app/"+ref[:1])
				}
				return err
			}
			if concurrent {
				errs := make(chan error, 2)
				go func() { errs <- pull("a:1") }()
				go func() { errs <- pull("b:1") }()
				for range 2 {
					if err := <-errs; err != nil {
						t.Fatal(err)
					}
				}
			} else {
				for _, ref := range []string{"a:1", "b:1"} {
					if err := pull(ref); err != nil {
						t.Fatal(err)
					}
				}
			}
			if n := s.blobGets(shared); n != 1 {
				t.Errorf("shared layer downloaded %d times, want 1", n)
			}
		})
	}
}

// TestPullConcurrent: many builds pulling one image at once download each
// blob once and unpack each layer once.
func TestPullConcurrent(t *testing.T) {
	needRoot(t)
	t.Parallel()
	s := startServer(t)
	base := testutil.BusyboxImage(t, testutil.HostPlatform())
	img := imageOf(t, base,
		layerOf(t, types.OCILayer, map[string]string{"l/1": strings.Repeat("1", 1<<20)}),
		layerOf(t, types.OCILayer, map[string]string{"l/2": "2"}),
		layerOf(t, types.OCIUncompressedLayer, map[string]string{"l/3": "3"}))
	s.push(t, "app:1", img)
	e := newEnv(t, nil)
	s.resetCounts()

	const pulls = 8
	var wg sync.WaitGroup
	chains := make([]string, pulls)
	errs := make([]error, pulls)
	for i := range pulls {
		wg.Go(func() {
			// Each build has its own view, as the engine makes them.
			got, err := e.p.WithCredentials(nil).Pull(t.Context(), s.host+"/app:1", amd64)
			if err == nil {
				chains[i] = got.ChainID
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("pull %d: %v", i, err)
		}
		if chains[i] != chains[0] {
			t.Errorf("pull %d: chain %s, want %s", i, chains[i], chains[0])
		}
	}
	layers, _ := img.Layers()
	cfg, _ := img.ConfigName()
	blobs := []v1.Hash{cfg}
	for _, l := range layers {
		d, _ := l.Digest()
		blobs = append(blobs, d)
	}
	for _, d := range blobs {
		if n := s.blobGets(d); n != 1 {
			t.Errorf("blob %s downloaded %d times, want 1", d, n)
		}
	}
	md := imageDigest(t, img)
	s.mu.Lock()
	manifestGets := s.gets["GET /v2/app/manifests/"+md.String()]
	s.mu.Unlock()
	if manifestGets != 1 {
		t.Errorf("manifest fetched %d times by digest, want 1", manifestGets)
	}
	for _, path := range []string{"l/1", "l/2", "l/3", "bin/busybox"} {
		if _, err := readFile(t, e, chains[0], path); err != nil {
			t.Error(err)
		}
	}
}
