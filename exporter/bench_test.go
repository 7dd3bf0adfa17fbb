package exporter

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/v2/core/snapshots"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/core/labels"
	"github.com/kiln-build/kiln/layer"
	"github.com/kiln-build/kiln/snapshot"
)

// discard is a client stream that drops what it gets.
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
func (discard) Close() error                { return nil }

// bigLayer commits a single-layer snapshot of 200 MiB: 100 files of 1 MiB
// of random bytes (incompressible, like binaries and compressed assets)
// and 100 of generated text (like sources and logs).
func bigLayer(b *testing.B, f *fixture) string {
	b.Helper()
	ctx := context.Background()
	key := "build-big"
	if _, err := f.sn.Prepare(ctx, key, ""); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	err := snapshot.WithActive(ctx, f.sn, key, func(dir string) error {
		buf := make([]byte, 1<<20)
		for i := range 200 {
			sub := filepath.Join(dir, fmt.Sprintf("d%02d", i/20))
			if err := os.MkdirAll(sub, 0o755); err != nil {
				return err
			}
			if i%2 == 0 {
				for j := range buf {
					buf[j] = byte(rng.Uint32())
				}
			} else {
				buf = buf[:0]
				for n := 0; len(buf) < 1<<20; n++ {
					buf = fmt.Appendf(buf, "line %d of file %d: value=%d status=%s\n", n, i, rng.IntN(1e6), []string{"ok", "retry", "failed"}[rng.IntN(3)])
				}
				buf = buf[:1<<20]
			}
			if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%03d", i)), buf, 0o644); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := f.sn.Commit(ctx, "kiln-r-big", key); err != nil {
		b.Fatal(err)
	}
	return "kiln-r-big"
}

// forget removes a snapshot's blob labels and blobs, as if it had never
// been exported.
func (f *fixture) forget(b *testing.B, name string) {
	b.Helper()
	ctx := context.Background()
	info, err := f.sn.Stat(ctx, name)
	if err != nil {
		b.Fatal(err)
	}
	paths := []string{"labels." + labels.DiffID}
	for _, c := range layer.Compressions() {
		if d, err := layer.ParseBlobLabel(info.Labels[labels.Blob(c)]); err == nil {
			if err := f.cs.Delete(ctx, d.Digest); err != nil {
				b.Fatal(err)
			}
		}
		paths = append(paths, "labels."+labels.Blob(c))
	}
	if _, err := f.sn.Update(ctx, snapshots.Info{Name: name}, paths...); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkExportOCITarball200MB exports a 200 MiB single-layer result to
// an OCI tarball: cold (diff and compress the layer) and no-change (the
// labelled blob is reused; only the tarball is written).
func BenchmarkExportOCITarball200MB(b *testing.B) {
	f := newFixture(b, "docker.io/library/busybox")
	name := bigLayer(b, f)
	res := Result{Images: []Image{{Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}, Ref: &fakeRef{id: name},
		Config: ocispec.Image{History: []ocispec.History{{CreatedBy: "COPY . /"}}}}}}
	ctx := context.Background()
	for _, comp := range []string{layer.Gzip, layer.Zstd} {
		deps := f.deps()
		deps.Writer = func() (io.WriteCloser, error) { return discard{}, nil }
		e, err := parse(TypeOCI, map[string]string{"dest": "-", "compression": comp}, deps)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(comp+"/cold", func(b *testing.B) {
			b.SetBytes(200 << 20)
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				f.forget(b, name)
				b.StartTimer()
				if _, err := e.Export(ctx, res); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(comp+"/no-change", func(b *testing.B) {
			if _, err := e.Export(ctx, res); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(200 << 20)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := e.Export(ctx, res); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
