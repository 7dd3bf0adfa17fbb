package exporter

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/layer"
	"github.com/kiln-build/kiln/snapshot"
)

// commitAt is commit with every written path's times set to mtime.
func (f *fixture) commitAt(t testing.TB, parent string, files map[string]string, mtime time.Time) string {
	t.Helper()
	ctx := context.Background()
	name := "kiln-r-" + randomHex()
	key := "build-" + name
	if _, err := f.sn.Prepare(ctx, key, parent); err != nil {
		t.Fatal(err)
	}
	err := snapshot.WithActive(ctx, f.sn, key, func(dir string) error {
		if err := writeFiles(dir, files); err != nil {
			return err
		}
		for p := range files {
			for q := p; q != "." && q != "/"; q = filepath.Dir(q) {
				if err := os.Chtimes(filepath.Join(dir, q), mtime, mtime); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.sn.Commit(ctx, name, key); err != nil {
		t.Fatal(err)
	}
	return name
}

// TestSourceDateEpochReproducible builds the same inputs on two daemon
// roots, with files written at different times, and exports both with one
// SOURCE_DATE_EPOCH: the image digests must be equal.
func TestSourceDateEpochReproducible(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	epoch := epochPtr(1_700_000_000)
	files := map[string]string{"app/main.sh": "echo hi\n", "app/data/": "", "etc/app.conf": "x=1\n"}
	build := func(mtime time.Time, attrs map[string]string) (Response, *fixture) {
		f := newFixture(t, "docker.io/library/busybox")
		l1 := f.commitAt(t, f.baseName, files, mtime)
		l2 := f.commitAt(t, l1, map[string]string{"app/more.txt": "more\n"}, mtime.Add(time.Hour))
		res := Result{Images: []Image{f.image(l2, ocispec.Platform{}, "COPY . /", "ENV X=1", "RUN more")}, Created: mtime}
		deps := f.deps()
		deps.SourceDateEpoch = epoch
		e, err := parse(TypeImage, attrs, deps)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := e.Export(ctx, res)
		if err != nil {
			t.Fatal(err)
		}
		return resp, f
	}
	t1 := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	t2 := time.Date(2026, 7, 9, 17, 30, 5, 0, time.UTC)
	for _, compression := range []string{layer.Gzip, layer.Zstd} {
		t.Run(compression, func(t *testing.T) {
			attrs := map[string]string{"name": "app", "compression": compression}
			a, fa := build(t1, attrs)
			b, fb := build(t2, attrs)
			if a[KeyDigest] != b[KeyDigest] {
				t.Errorf("digests differ: %s vs %s", a[KeyDigest], b[KeyDigest])
			}
			_, m, cfg := fa.loadImage(t, responseTarget(t, a))
			if cfg.Created == nil || !cfg.Created.Equal(*epoch) {
				t.Errorf("config created %v, want the epoch %v", cfg.Created, epoch)
			}
			for _, h := range cfg.History {
				if h.Created == nil || h.Created.After(*epoch) {
					t.Errorf("history %q created %v, after the epoch", h.CreatedBy, h.Created)
				}
			}
			if m.Layers[0].Digest != fa.baseLayer.Digest {
				t.Errorf("base layer %s, want the pulled blob %s", m.Layers[0].Digest, fa.baseLayer.Digest)
			}
			if n := fb.diffs.Load(); n != 2 {
				t.Errorf("%d diffs, want 2 (the base layer is never diffed)", n)
			}
		})
	}

	// rewrite-timestamp=false keeps the file times: the layers differ.
	a, _ := build(t1, map[string]string{"rewrite-timestamp": "false"})
	b, _ := build(t2, map[string]string{"rewrite-timestamp": "false"})
	if a[KeyDigest] == b[KeyDigest] {
		t.Error("rewrite-timestamp=false gave equal digests for files with different times")
	}
}

// TestSourceDateEpochLabelsApart checks that clamped and unclamped blobs of
// one snapshot are remembered apart.
func TestSourceDateEpochLabelsApart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, "docker.io/library/busybox")
	late := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	l1 := f.commitAt(t, f.baseName, map[string]string{"a.txt": "a\n"}, late)
	export := func(epoch *time.Time) ocispec.Descriptor {
		t.Helper()
		lb, err := f.layers.Blob(ctx, l1, layer.BlobOptions{SourceDateEpoch: epoch})
		if err != nil {
			t.Fatal(err)
		}
		return lb.Desc
	}
	plain := export(nil)
	clamped := export(epochPtr(1_000_000_000))
	other := export(epochPtr(1_100_000_000))
	if plain.Digest == clamped.Digest || clamped.Digest == other.Digest {
		t.Errorf("blobs should all differ: %s %s %s", plain.Digest, clamped.Digest, other.Digest)
	}
	n := f.diffs.Load()
	again := []ocispec.Descriptor{export(nil), export(epochPtr(1_000_000_000)), export(epochPtr(1_100_000_000))}
	if diff := cmp.Diff([]ocispec.Descriptor{plain, clamped, other}, again); diff != "" {
		t.Errorf("second round (-first +second):\n%s", diff)
	}
	if f.diffs.Load() != n {
		t.Errorf("the second round diffed again")
	}
}
