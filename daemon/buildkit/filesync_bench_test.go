package buildkit

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/moby/buildkit/session/filesync"

	"github.com/kiln-build/kiln/session"
)

// BenchmarkSyncDir measures a DiffCopy from BuildKit's own client side
// (filesync.NewFSSyncProvider, as buildctl and buildx run it) through a
// session over an in-memory pipe, with the bench's context shape (5,000
// small files in 50 directories, four 1 MiB files): into an empty
// directory, and again with nothing changed (filesync.BenchmarkSync is
// the same for Kiln's own protocol).
func BenchmarkSyncDir(b *testing.B) {
	src := b.TempDir()
	for i := range 5000 {
		p := filepath.Join(src, "src", fmt.Sprintf("d%02d", i%50), fmt.Sprintf("f%04d.txt", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, fmt.Appendf(nil, "file %d\n", i), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 4 {
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("big%d.bin", i)), make([]byte, 1<<20), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	fsys, err := fsutilNewFS(src)
	if err != nil {
		b.Fatal(err)
	}
	a := connect(b, filesync.NewFSSyncProvider(filesync.StaticDirSource{"context": fsys}))
	sync := func(b *testing.B, dest string) session.SyncStats {
		if err := os.MkdirAll(dest, 0o755); err != nil {
			b.Fatal(err)
		}
		st, err := a.SyncDir(context.Background(), "context", session.SyncOptions{}, dest)
		if err != nil {
			b.Fatal(err)
		}
		return st
	}
	b.Run("cold", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			dest := filepath.Join(b.TempDir(), fmt.Sprint(i))
			b.StartTimer()
			if st := sync(b, dest); st.Transferred != 5004 {
				b.Fatalf("cold sync transferred %d files", st.Transferred)
			}
		}
	})
	dest := filepath.Join(b.TempDir(), "dest")
	sync(b, dest)
	b.Run("no-change", func(b *testing.B) {
		for b.Loop() {
			if st := sync(b, dest); st.Transferred != 0 {
				b.Fatalf("no-change sync transferred %d files", st.Transferred)
			}
		}
	})
}
