package local

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// benchContext writes 5,000 files of 40 KiB (200 MiB) in 50 directories.
// b.TempDir honours TMPDIR.
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

// BenchmarkChecksum measures the content checksum of the whole 5,000-file /
// 200 MiB context: with no cache (every byte hashed) and with the store's
// hash cache warm (what a rebuild pays).
func BenchmarkChecksum(b *testing.B) {
	src := benchContext(b)
	ctx := context.Background()
	b.Run("uncached", func(b *testing.B) {
		b.SetBytes(5000 * 40 << 10)
		for b.Loop() {
			if _, err := Checksum(ctx, src, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		hc := newHashCache("")
		if _, err := checksum(ctx, src, nil, hc); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := checksum(ctx, src, nil, hc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached-selector", func(b *testing.B) {
		hc := newHashCache("")
		sel := []string{"pkg07", "pkg1*/file00?.go"}
		if _, err := checksum(ctx, src, sel, hc); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := checksum(ctx, src, sel, hc); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRebuild measures what a rebuild of the 5,000-file / 200 MiB
// context costs before any step runs: the sync through the real protocol
// (in-memory pipe) into the store, plus the content checksum of the whole
// context, with nothing changed and with one file changed.
func BenchmarkRebuild(b *testing.B) {
	src := benchContext(b)
	ctx := context.Background()
	store, err := NewStore(filepath.Join(b.TempDir(), "contexts"))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	key := Key{ClientID: "bench", Path: src, Name: "context"}
	rebuild := func(b *testing.B) {
		ref, err := store.Sync(ctx, key, syncFrom(src, nil))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ref.Checksum(ctx, nil); err != nil {
			b.Fatal(err)
		}
		_ = ref.Release(ctx)
	}
	rebuild(b) // the first build: full transfer and hashing
	b.Run("no-change", func(b *testing.B) {
		for b.Loop() {
			rebuild(b)
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
			rebuild(b)
		}
	})
}
