package file_test

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/kiln-build/kiln/graph"
	"github.com/kiln-build/kiln/ops"
	"github.com/kiln-build/kiln/ops/file"
	"github.com/kiln-build/kiln/snapshot"
)

// BenchmarkCopyContext copies a build context of 5,000 files, 200 MB in
// all, into an overlay snapshot: with the hard-link fast path, and copying
// bytes. Run with: go test -run '^$' -bench CopyContext ./ops/file/
func BenchmarkCopyContext(b *testing.B) {
	const (
		files = 5000
		total = 200 << 20
	)
	e := newEnv(b, snapshot.KindOverlay)
	writeBenchContext(b, e.ctxt, files, total/files)
	base := e.base(wfile("etc/passwd", "root:x:0:0::/:/bin/sh\n", 0o644))
	for _, bc := range []struct {
		name string
		opts []file.Option
		base ops.Ref
	}{
		{"link", nil, base},
		{"copy", []file.Option{file.WithoutLinks()}, base},
		{"link-empty-base", nil, nil},
		{"copy-empty-base", []file.Option{file.WithoutLinks()}, nil},
	} {
		b.Run(bc.name, func(b *testing.B) {
			v := fileVertex(cp([]string{"."}, "/app/"))
			if bc.base == nil {
				v.Op.File.Base = graph.NoInput
			}
			op, err := file.New(v, e.snaps, append([]file.Option{file.WithMountDir(e.mnt)}, bc.opts...)...)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(total)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ref, err := op.Exec(e.ctx, []ops.Ref{bc.base, dirRef{e.ctxt}})
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				removeResult(b, e, ref)
				b.StartTimer()
			}
			b.ReportMetric(float64(files)*float64(b.N)/b.Elapsed().Seconds(), "files/s")
		})
	}
}

func removeResult(b *testing.B, e *env, ref ops.Ref) {
	ctx := context.Background()
	_ = ref.Release(ctx)
	sn := e.snaps.Snapshotter()
	if err := sn.Remove(ctx, ref.ID()); err != nil {
		b.Fatal(err)
	}
	if err := sn.Cleanup(ctx); err != nil {
		b.Fatal(err)
	}
}

// writeBenchContext writes n files of size bytes each in 50 directories.
func writeBenchContext(b *testing.B, dir string, n, size int) {
	b.Helper()
	buf := make([]byte, size)
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < n; i++ {
		d := filepath.Join(dir, fmt.Sprintf("d%02d", i%50))
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.Fatal(err)
		}
		rng.Read(buf)
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%05d", i)), buf, 0o644); err != nil {
			b.Fatal(err)
		}
	}
}
