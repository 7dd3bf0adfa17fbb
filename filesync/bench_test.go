package filesync

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kiln-build/kiln/session"
)

// benchContext writes the performance-target context: 5,000 files of 40 KiB
// (200 MiB) in 50 directories. b.TempDir honours TMPDIR, so the numbers can
// be taken on disk or on tmpfs.
func benchContext(b *testing.B) string {
	b.Helper()
	src := b.TempDir()
	data := make([]byte, 40<<10)
	for d := range 50 {
		dp := filepath.Join(src, fmt.Sprintf("pkg%02d", d))
		if err := os.Mkdir(dp, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range 100 {
			copy(data, fmt.Sprintf("%d/%d", d, f))
			if err := os.WriteFile(filepath.Join(dp, fmt.Sprintf("file%03d.go", f)), data, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	return src
}

func benchSync(b *testing.B, src, dest string) session.SyncStats {
	b.Helper()
	st, err := Local(context.Background(), src, dest, session.SyncOptions{ExcludePatterns: []string{".git", "**/*.tmp"}})
	if err != nil {
		b.Fatal(err)
	}
	return st
}

// BenchmarkSync measures a sync of the 5,000-file / 200 MiB context through
// the in-memory pipe: into an empty directory (cold), with nothing changed,
// and with one file changed.
func BenchmarkSync(b *testing.B) {
	src := benchContext(b)
	b.Run("cold", func(b *testing.B) {
		b.SetBytes(5000 * 40 << 10)
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			dest := filepath.Join(b.TempDir(), fmt.Sprint(i))
			b.StartTimer()
			if st := benchSync(b, src, dest); st.Transferred != 5000 {
				b.Fatalf("cold sync transferred %d files", st.Transferred)
			}
		}
	})
	dest := filepath.Join(b.TempDir(), "dest")
	benchSync(b, src, dest)
	b.Run("no-change", func(b *testing.B) {
		for b.Loop() {
			if st := benchSync(b, src, dest); st.Transferred != 0 {
				b.Fatalf("no-change sync transferred %d files", st.Transferred)
			}
		}
	})
	b.Run("one-file", func(b *testing.B) {
		p := filepath.Join(src, "pkg17", "file042.go")
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			if err := os.WriteFile(p, fmt.Appendf(nil, "change %d", i), 0o644); err != nil {
				b.Fatal(err)
			}
			mt := time.Unix(1700000000+int64(i), 0)
			if err := os.Chtimes(p, mt, mt); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if st := benchSync(b, src, dest); st.Transferred != 1 {
				b.Fatalf("one-file sync transferred %d files", st.Transferred)
			}
		}
	})
}
