package exporter

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/log"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/kiln-build/kiln/content"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/core/labels"
	"github.com/kiln-build/kiln/imagestore"
	"github.com/kiln-build/kiln/internal/testroot"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/layer"
	"github.com/kiln-build/kiln/snapshot"
)

func TestMain(m *testing.M) {
	// containerd logs through a process-wide logrus logger; its warnings
	// (no fs-verity on the test filesystem) are noise here.
	_ = log.SetLevel("error")
	os.Exit(m.Run())
}

// fixture is a daemon's storage in a temp root: content store,
// snapshotter, image store, and the busybox base image unpacked as a
// pulled image is (blob in the store, labelled chain-ID snapshot).
type fixture struct {
	root   string
	cs     content.Store
	sn     *snapshot.Snapshotter
	layers *layer.Maker
	images *imagestore.Store

	diffs atomic.Int64 // Diff calls
	mu    sync.Mutex
	diffd []string // snapshots diffed

	base       v1.Image
	baseConfig ocispec.Image
	baseLayer  ocispec.Descriptor // the pulled blob
	baseDiffID digest.Digest
	baseName   string // its snapshot (chain ID)
}

func requireRoot(t testing.TB) {
	t.Helper()
	testroot.Require(t, "mounts snapshots")
}

// newFixture sets up storage under a fresh root. source is the repository
// the base layer is labelled as pulled from.
func newFixture(t testing.TB, source string) *fixture {
	t.Helper()
	requireRoot(t)
	ctx := context.Background()
	root := t.TempDir()
	f := &fixture{root: root}
	var err error
	if f.cs, err = content.Open(filepath.Join(root, "content")); err != nil {
		t.Fatal(err)
	}
	if f.sn, err = snapshot.New(root, snapshot.KindAuto); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.sn.Close() })
	f.layers = layer.NewMaker(f.cs, f.sn, layer.WithDiffHook(func(name string) {
		f.diffs.Add(1)
		f.mu.Lock()
		f.diffd = append(f.diffd, name)
		f.mu.Unlock()
	}))
	db, err := bolt.Open(filepath.Join(root, "metadata.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if f.images, err = imagestore.New(db, f.cs); err != nil {
		t.Fatal(err)
	}
	f.unpackBase(t, ctx, source)
	return f
}

func (f *fixture) unpackBase(t testing.TB, ctx context.Context, source string) {
	t.Helper()
	f.base = testutil.BusyboxImage(t, testutil.HostPlatform())
	raw, err := f.base.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &f.baseConfig); err != nil {
		t.Fatal(err)
	}
	ls, err := f.base.Layers()
	if err != nil || len(ls) != 1 {
		t.Fatalf("busybox layers: %d, %v", len(ls), err)
	}
	dig, _ := ls[0].Digest()
	size, _ := ls[0].Size()
	diffID, _ := ls[0].DiffID()
	f.baseLayer = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.Digest(dig.String()), Size: size}
	f.baseDiffID = digest.Digest(diffID.String())
	rc, err := ls[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := content.WriteBlob(ctx, f.cs, "", rc, f.baseLayer); err != nil {
		t.Fatal(err)
	}
	u, err := ls[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if f.baseName, err = snapshot.Unpack(ctx, f.sn, "", u, snapshot.WithDiffID(f.baseDiffID)); err != nil {
		t.Fatal(err)
	}
	info := snapshots.Info{Name: f.baseName, Labels: map[string]string{
		labels.DiffID:           f.baseDiffID.String(),
		labels.Blob(layer.Gzip): layer.BlobLabel(f.baseLayer),
		labels.Source:           source,
	}}
	if _, err := f.sn.Update(ctx, info, "labels."+labels.DiffID, "labels."+labels.Blob(layer.Gzip), "labels."+labels.Source); err != nil {
		t.Fatal(err)
	}
}

// commit makes a committed snapshot on parent holding files (path →
// content; a trailing "/" makes a directory) and returns its name.
func (f *fixture) commit(t testing.TB, parent string, files map[string]string) string {
	t.Helper()
	ctx := context.Background()
	name := "kiln-r-" + randomHex()
	key := "build-" + name
	if _, err := f.sn.Prepare(ctx, key, parent); err != nil {
		t.Fatal(err)
	}
	err := snapshot.WithActive(ctx, f.sn, key, func(dir string) error {
		return writeFiles(dir, files)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.sn.Commit(ctx, name, key); err != nil {
		t.Fatal(err)
	}
	return name
}

func writeFiles(dir string, files map[string]string) error {
	for p, data := range files {
		full := filepath.Join(dir, p)
		if p[len(p)-1] == '/' {
			if err := os.MkdirAll(full, 0o755); err != nil {
				return err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// result3 builds the usual three-layer result: busybox, then /app/a.txt,
// then /app/b.txt with an ENV step between them; it returns the result
// and the two new snapshots.
func (f *fixture) result3(t testing.TB) (Result, []string) {
	t.Helper()
	l1 := f.commit(t, f.baseName, map[string]string{"app/a.txt": "first layer\n"})
	l2 := f.commit(t, l1, map[string]string{"app/b.txt": "second layer\n"})
	return Result{Images: []Image{f.image(l2, ocispec.Platform{}, "COPY a.txt /app/", "ENV A=1", "COPY b.txt /app/")}}, []string{l1, l2}
}

// image returns the result image for snapshot name: the base config with
// a history entry per step ("ENV" steps are empty layers). A zero
// platform means the host's.
func (f *fixture) image(name string, p ocispec.Platform, steps ...string) Image {
	if p.OS == "" {
		hp := testutil.HostPlatform()
		p = ocispec.Platform{OS: hp.OS, Architecture: hp.Architecture, Variant: hp.Variant}
	}
	cfg := f.baseConfig
	cfg.RootFS = ocispec.RootFS{}
	cfg.History = append([]ocispec.History(nil), f.baseConfig.History...)
	for _, s := range steps {
		cfg.History = append(cfg.History, ocispec.History{CreatedBy: s, EmptyLayer: len(s) > 3 && s[:3] == "ENV"})
	}
	var ref *fakeRef
	if name != "" {
		ref = &fakeRef{id: name}
	}
	img := Image{Platform: p, Config: cfg}
	if ref != nil {
		img.Ref = ref
	}
	return img
}

func (f *fixture) deps() Deps {
	return Deps{Layers: f.layers, Images: f.images}
}

// fakeRef is a worker result: a snapshot name.
type fakeRef struct{ id string }

func (r *fakeRef) ID() string                    { return r.id }
func (r *fakeRef) Release(context.Context) error { return nil }

// dirRef is a result that is a plain directory (a synced context).
type dirRef struct{ dir string }

func (r *dirRef) ID() string                    { return "" }
func (r *dirRef) Release(context.Context) error { return nil }
func (r *dirRef) Dir() string                   { return r.dir }

// bufWriter collects a client stream.
type bufWriter struct {
	bytes.Buffer
	closed bool
	err    error
}

func (b *bufWriter) Close() error { b.closed = true; return nil }
func (b *bufWriter) CloseWithError(err error) error {
	b.closed, b.err = true, err
	return nil
}

// writerDeps returns deps whose Writer is w.
func (f *fixture) writerDeps(w *bufWriter) Deps {
	d := f.deps()
	d.Writer = func() (io.WriteCloser, error) { return w, nil }
	return d
}

func epochPtr(sec int64) *time.Time {
	t := time.Unix(sec, 0).UTC()
	return &t
}

func cmpSortStrings() cmp.Option {
	return cmpopts.SortSlices(func(a, b string) bool { return a < b })
}

// validateImage runs go-containerregistry's validate.Image on img. Its
// layer check reads every layer as gzip, so images with zstd or
// uncompressed layers get the fast check plus checkLayers, which reads
// each layer through its own decompression.
func validateImage(t testing.TB, img v1.Image) {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	allGzip := true
	for _, l := range ls {
		if mt, _ := l.MediaType(); !strings.HasSuffix(string(mt), "gzip") {
			allGzip = false
		}
	}
	if allGzip {
		if err := validate.Image(img); err != nil {
			t.Fatalf("validate.Image: %v", err)
		}
		return
	}
	if err := validate.Image(img, validate.Fast); err != nil {
		t.Fatalf("validate.Image: %v", err)
	}
	checkLayers(t, ls)
}

// checkLayers checks each layer's digest, size and diffID against its
// bytes.
func checkLayers(t testing.TB, ls []v1.Layer) {
	t.Helper()
	for i, l := range ls {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		d, n, err := v1.SHA256(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		wantD, _ := l.Digest()
		wantN, _ := l.Size()
		if d != wantD || n != wantN {
			t.Errorf("layer %d: bytes are %s (%d), descriptor says %s (%d)", i, d, n, wantD, wantN)
		}
		rc, err = l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		u, _, err := v1.SHA256(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if wantU, _ := l.DiffID(); u != wantU {
			t.Errorf("layer %d: tar is %s, diffID says %s", i, u, wantU)
		}
	}
}

// validateIndex validates an index and each of its images.
func validateIndex(t testing.TB, idx v1.ImageIndex) {
	t.Helper()
	if err := validate.Index(idx, validate.Fast); err != nil {
		t.Fatalf("validate.Index: %v", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range im.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		validateImage(t, img)
	}
}

// builtin are the built-in factories, wired as cmd/kilnd wires them.
func builtin() map[string]Factory {
	return map[string]Factory{
		TypeImage: ImageFactory(), TypeRegistry: RegistryFactory(), TypeOCI: OCIFactory(),
		TypeDocker: DockerFactory(), TypeLocal: LocalFactory(), TypeTar: TarFactory(),
	}
}

// parse makes the exporter of an --output type=typ value, as the engine
// does.
func parse(typ string, attrs map[string]string, deps Deps) (Exporter, error) {
	f, ok := builtin()[typ]
	if !ok {
		return nil, errdefs.Invalidf("unknown exporter type %q", typ)
	}
	return f.New(attrs, deps)
}

func randomHex() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
