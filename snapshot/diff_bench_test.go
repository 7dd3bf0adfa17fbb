package snapshot_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/kiln-build/kiln/internal/testroot"
	"github.com/kiln-build/kiln/snapshot"
)

// BenchmarkDiffLargeUpper measures Diff of a layer that adds 200 files of
// 1 MiB (200 MiB) on a small parent.
func BenchmarkDiffLargeUpper(b *testing.B) {
	for _, kind := range kinds {
		b.Run(kind, func(b *testing.B) {
			ctx := context.Background()
			sn := newBenchSnapshotter(b, kind)
			commitBench(ctx, b, sn, "base", "", func(dir string) error {
				return writeFiles(dir, "base", 10, 1024)
			})
			commitBench(ctx, b, sn, "big", "base", func(dir string) error {
				return writeFiles(dir, "big", 200, 1<<20)
			})
			b.SetBytes(200 << 20)
			b.ResetTimer()
			for b.Loop() {
				if _, _, err := snapshot.Diff(ctx, sn, "big", io.Discard); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDiffSmallUpperLargeLower measures Diff of a layer that changes
// 10 files on a parent of 20,000: the overlay path reads only the upper
// directory, the native path walks both trees.
func BenchmarkDiffSmallUpperLargeLower(b *testing.B) {
	for _, kind := range kinds {
		b.Run(kind, func(b *testing.B) {
			ctx := context.Background()
			sn := newBenchSnapshotter(b, kind)
			commitBench(ctx, b, sn, "base", "", func(dir string) error {
				for i := range 20 {
					if err := writeFiles(filepath.Join(dir, fmt.Sprintf("d%02d", i)), "f", 1000, 64); err != nil {
						return err
					}
				}
				return nil
			})
			commitBench(ctx, b, sn, "small", "base", func(dir string) error {
				return writeFiles(filepath.Join(dir, "d07"), "changed", 10, 64)
			})
			b.ResetTimer()
			for b.Loop() {
				if _, _, err := snapshot.Diff(ctx, sn, "small", io.Discard); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func newBenchSnapshotter(b *testing.B, kind string) *snapshot.Snapshotter {
	b.Helper()
	testroot.Require(b, "mounts snapshots")
	sn, err := snapshot.New(b.TempDir(), kind)
	if err != nil {
		b.Skipf("snapshotter %s: %v", kind, err)
	}
	b.Cleanup(func() { _ = sn.Close() })
	return sn
}

func commitBench(ctx context.Context, b *testing.B, sn *snapshot.Snapshotter, name, parent string, fill func(string) error) {
	b.Helper()
	key := "build-" + name
	if _, err := sn.Prepare(ctx, key, parent); err != nil {
		b.Fatal(err)
	}
	if err := snapshot.WithActive(ctx, sn, key, fill); err != nil {
		b.Fatal(err)
	}
	if err := sn.Commit(ctx, name, key); err != nil {
		b.Fatal(err)
	}
}

func writeFiles(dir, prefix string, n, size int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data := make([]byte, size)
	for i := range n {
		data[0] = byte(i)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%04d", prefix, i)), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}
