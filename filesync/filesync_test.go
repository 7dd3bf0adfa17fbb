package filesync

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/kiln-build/kiln/session"
)

func sampleTree() []node {
	return []node{
		file("Dockerfile", "FROM scratch\n", 0o644),
		dir("bin", 0o755),
		file("bin/tool", "#!/bin/sh\necho hi\n", 0o755),
		file("bin/suid", "x", 0o755|fs.ModeSetuid),
		dir("docs", 0o555),
		file("docs/README", "read me", 0o444),
		file("empty", "", 0o600),
		link("link-rel", "docs/README"),
		link("link-abs", "/etc/passwd"),
		link("link-dangling", "nowhere/at/all"),
		dir("src", 0o750),
		dir("src/pkg", 0o755),
		file("src/pkg/a.go", "package a\n", 0o644),
		file("src/pkg/b.go", strings.Repeat("b", 5000), 0o644),
		dir("tmp", 0o755|fs.ModeSticky),
		dir("tmp/empty-dir", 0o700),
	}
}

func syncDirs(t *testing.T, src, dest string, o session.SyncOptions, opts ...Option) session.SyncStats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := Local(ctx, src, dest, o, opts...)
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	return st
}

func TestFullAndNoChangeSync(t *testing.T) {
	t.Parallel()
	src, dest := t.TempDir(), filepath.Join(t.TempDir(), "dest")
	writeTree(t, src, sampleTree()...)

	st := syncDirs(t, src, dest, session.SyncOptions{}, WithChunkSize(1024), WithBatchSize(3))
	sameTree(t, src, dest)
	want := session.SyncStats{Files: 16, Transferred: 7, Bytes: 13 + 18 + 1 + 7 + 10 + 5000}
	if diff := cmp.Diff(want, st); diff != "" {
		t.Errorf("first sync stats (-want +got):\n%s", diff)
	}

	st = syncDirs(t, src, dest, session.SyncOptions{})
	sameTree(t, src, dest)
	if diff := cmp.Diff(session.SyncStats{Files: 16, Unchanged: true}, st); diff != "" {
		t.Errorf("no-change sync stats (-want +got):\n%s", diff)
	}
}

func TestIncrementalChanges(t *testing.T) {
	t.Parallel()
	later := baseTime.Add(time.Hour)
	tests := []struct {
		name   string
		change func(t *testing.T, src string)
		want   session.SyncStats
	}{{
		name: "one file content",
		change: func(t *testing.T, src string) {
			p := filepath.Join(src, "src/pkg/a.go")
			if err := os.WriteFile(p, []byte("package a // changed\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		},
		want: session.SyncStats{Files: 16, Transferred: 1, Bytes: 21},
	}, {
		name: "touch",
		change: func(t *testing.T, src string) {
			if err := os.Chtimes(filepath.Join(src, "empty"), later, later); err != nil {
				t.Fatal(err)
			}
		},
		want: session.SyncStats{Files: 16, Transferred: 1},
	}, {
		name: "chmod",
		change: func(t *testing.T, src string) {
			if err := os.Chmod(filepath.Join(src, "bin/tool"), 0o700); err != nil {
				t.Fatal(err)
			}
		},
		want: session.SyncStats{Files: 16, Transferred: 1, Bytes: 18},
	}, {
		name: "directory mode",
		change: func(t *testing.T, src string) {
			if err := os.Chmod(filepath.Join(src, "src"), 0o700); err != nil {
				t.Fatal(err)
			}
		},
		want: session.SyncStats{Files: 16},
	}, {
		name: "delete file and directory",
		change: func(t *testing.T, src string) {
			if err := os.RemoveAll(filepath.Join(src, "src")); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(filepath.Join(src, "empty")); err != nil {
				t.Fatal(err)
			}
		},
		want: session.SyncStats{Files: 11, Removed: 2},
	}, {
		name: "file becomes directory",
		change: func(t *testing.T, src string) {
			p := filepath.Join(src, "empty")
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			writeTree(t, src, dir("empty", 0o755), file("empty/inner", "in", 0o644))
		},
		want: session.SyncStats{Files: 17, Transferred: 1, Bytes: 2},
	}, {
		name: "directory becomes symlink",
		change: func(t *testing.T, src string) {
			if err := os.RemoveAll(filepath.Join(src, "src")); err != nil {
				t.Fatal(err)
			}
			writeTree(t, src, link("src", "bin"))
		},
		want: session.SyncStats{Files: 13},
	}, {
		name: "directory becomes file",
		change: func(t *testing.T, src string) {
			if err := os.RemoveAll(filepath.Join(src, "bin")); err != nil {
				t.Fatal(err)
			}
			writeTree(t, src, file("bin", "now a file", 0o644))
		},
		want: session.SyncStats{Files: 14, Transferred: 1, Bytes: 10},
	}, {
		name: "symlink retargeted and becomes file",
		change: func(t *testing.T, src string) {
			for _, p := range []string{"link-rel", "link-abs"} {
				if err := os.Remove(filepath.Join(src, p)); err != nil {
					t.Fatal(err)
				}
			}
			writeTree(t, src, link("link-rel", "bin/tool"), file("link-abs", "file now", 0o644))
		},
		want: session.SyncStats{Files: 16, Transferred: 1, Bytes: 8},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src, dest := t.TempDir(), t.TempDir()
			writeTree(t, src, sampleTree()...)
			syncDirs(t, src, dest, session.SyncOptions{})
			tc.change(t, src)
			st := syncDirs(t, src, dest, session.SyncOptions{})
			sameTree(t, src, dest)
			if diff := cmp.Diff(tc.want, st); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
		})
	}
}

// A file replaced by a sync must not change under a hard link taken before
// (a snapshot that linked it keeps its content).
func TestReplacesByRename(t *testing.T) {
	t.Parallel()
	src, dest, snap := t.TempDir(), t.TempDir(), t.TempDir()
	writeTree(t, src, file("a.txt", "version 1", 0o644))
	syncDirs(t, src, dest, session.SyncOptions{})
	if err := os.Link(filepath.Join(dest, "a.txt"), filepath.Join(snap, "a.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "a.txt"), []byte("version 2!"), 0o600); err != nil {
		t.Fatal(err)
	}
	syncDirs(t, src, dest, session.SyncOptions{})
	sameTree(t, src, dest)
	b, err := os.ReadFile(filepath.Join(snap, "a.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "version 1" {
		t.Errorf("hard link of the old file now reads %q, want %q", b, "version 1")
	}
}

func TestPatterns(t *testing.T) {
	t.Parallel()
	tree := []node{
		file(".dockerignore", "x", 0o644),
		file("Dockerfile", "x", 0o644),
		file("a.log", "x", 0o644),
		dir("build", 0o755),
		file("build/out.bin", "x", 0o644),
		file("build/keep.txt", "x", 0o644),
		dir("node_modules", 0o755),
		dir("node_modules/dep", 0o755),
		file("node_modules/dep/index.js", "x", 0o644),
		dir("src", 0o755),
		file("src/main.go", "x", 0o644),
		file("src/main_test.go", "x", 0o644),
		dir("src/deep", 0o755),
		dir("src/deep/er", 0o755),
		file("src/deep/er/x.log", "x", 0o644),
		file("src/deep/er/y.go", "x", 0o644),
	}
	tests := []struct {
		name string
		opts session.SyncOptions
		want []string
	}{{
		name: "everything",
		want: []string{".dockerignore", "Dockerfile", "a.log", "build", "build/keep.txt", "build/out.bin",
			"node_modules", "node_modules/dep", "node_modules/dep/index.js",
			"src", "src/deep", "src/deep/er", "src/deep/er/x.log", "src/deep/er/y.go", "src/main.go", "src/main_test.go"},
	}, {
		name: "excluded directory",
		opts: session.SyncOptions{ExcludePatterns: []string{"node_modules"}},
		want: []string{".dockerignore", "Dockerfile", "a.log", "build", "build/keep.txt", "build/out.bin",
			"src", "src/deep", "src/deep/er", "src/deep/er/x.log", "src/deep/er/y.go", "src/main.go", "src/main_test.go"},
	}, {
		name: "double star and exception",
		opts: session.SyncOptions{ExcludePatterns: []string{"**/*.log", "build", "!build/keep.txt", "node_modules"}},
		want: []string{".dockerignore", "Dockerfile", "build", "build/keep.txt",
			"src", "src/deep", "src/deep/er", "src/deep/er/y.go", "src/main.go", "src/main_test.go"},
	}, {
		name: "exclude everything but",
		opts: session.SyncOptions{ExcludePatterns: []string{"*", "!src/**/*.go", "src/**/*_test.go"}},
		want: []string{"src", "src/deep", "src/deep/er", "src/deep/er/y.go", "src/main.go"},
	}, {
		name: "include patterns",
		opts: session.SyncOptions{IncludePatterns: []string{"src/deep", "Dockerfile"}, ExcludePatterns: []string{"**/*.log"}},
		want: []string{"Dockerfile", "src", "src/deep", "src/deep/er", "src/deep/er/y.go"},
	}, {
		name: "include with wildcard",
		opts: session.SyncOptions{IncludePatterns: []string{"src/*.go"}},
		want: []string{"src", "src/main.go", "src/main_test.go"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src, dest := t.TempDir(), t.TempDir()
			writeTree(t, src, tree...)
			st := syncDirs(t, src, dest, tc.opts)
			got := paths(readTree(t, dest))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("synced paths (-want +got):\n%s", diff)
			}
			if st.Files != len(tc.want) {
				t.Errorf("stats.Files = %d, want %d", st.Files, len(tc.want))
			}
		})
	}
}

// An excluded directory with no exception inside it is never read: an
// unreadable one does not fail the sync.
func TestExcludedDirNotWalked(t *testing.T) {
	t.Parallel()
	if os.Geteuid() == 0 {
		t.Skip("root reads directories whatever their mode")
	}
	src, dest := t.TempDir(), t.TempDir()
	writeTree(t, src, file("a", "a", 0o644), dir("secret", 0o755), file("secret/x", "x", 0o644))
	if err := os.Chmod(filepath.Join(src, "secret"), 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(filepath.Join(src, "secret"), 0o755) })
	syncDirs(t, src, dest, session.SyncOptions{ExcludePatterns: []string{"secret"}})
	if diff := cmp.Diff([]string{"a"}, paths(readTree(t, dest))); diff != "" {
		t.Error(diff)
	}
}

func TestFollowPaths(t *testing.T) {
	t.Parallel()
	src, dest := t.TempDir(), t.TempDir()
	writeTree(t, src,
		dir("build", 0o755), file("build/Dockerfile.real", "FROM x", 0o644),
		link("Dockerfile", "build/Dockerfile.real"), file("other", "o", 0o644))
	syncDirs(t, src, dest, session.SyncOptions{FollowPaths: []string{"Dockerfile"}})
	want := []string{"Dockerfile", "build", "build/Dockerfile.real"}
	if diff := cmp.Diff(want, paths(readTree(t, dest))); diff != "" {
		t.Errorf("synced paths (-want +got):\n%s", diff)
	}
}

func TestBigFileChunks(t *testing.T) {
	t.Parallel()
	src, dest := t.TempDir(), t.TempDir()
	data := make([]byte, 3<<20+17)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := os.WriteFile(filepath.Join(src, "big"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	st := syncDirs(t, src, dest, session.SyncOptions{}, WithChunkSize(64<<10))
	sameTree(t, src, dest)
	if st.Bytes != int64(len(data)) || st.Transferred != 1 {
		t.Errorf("stats = %+v, want 1 file of %d bytes", st, len(data))
	}
}

func TestSourceErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts session.SyncOptions
		src  func(t *testing.T) string
		want string
	}{{
		name: "missing directory",
		src:  func(t *testing.T) string { return filepath.Join(t.TempDir(), "nope") },
		want: "no such file or directory",
	}, {
		name: "a file",
		src: func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "f")
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			return p
		},
		want: "is not a directory",
	}, {
		name: "bad pattern",
		src:  func(t *testing.T) string { return t.TempDir() },
		opts: session.SyncOptions{ExcludePatterns: []string{"[z-a"}},
		want: "invalid exclude pattern",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, err := Local(ctx, tc.src(t), t.TempDir(), tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestManyFiles(t *testing.T) {
	t.Parallel()
	n := 20000
	if testing.Short() {
		n = 2000
	}
	src, dest := memTempDir(t), memTempDir(t)
	for d := 0; d < n/500; d++ {
		dp := filepath.Join(src, fmt.Sprintf("d%03d", d))
		if err := os.Mkdir(dp, 0o755); err != nil {
			t.Fatal(err)
		}
		for f := 0; f < 500; f++ {
			if err := os.WriteFile(filepath.Join(dp, fmt.Sprintf("f%03d", f)), []byte(dp), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	st := syncDirs(t, src, dest, session.SyncOptions{})
	if st.Transferred != n || st.Files != n+n/500 {
		t.Fatalf("first sync = %+v, want %d files transferred", st, n)
	}
	if err := os.WriteFile(filepath.Join(src, "d001", "f123"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	st = syncDirs(t, src, dest, session.SyncOptions{})
	if st.Transferred != 1 || st.Removed != 0 {
		t.Fatalf("second sync = %+v, want exactly 1 file transferred", st)
	}
	sameTree(t, src, dest)
}

func TestCancel(t *testing.T) {
	t.Parallel()
	src, dest := t.TempDir(), t.TempDir()
	writeTree(t, src, sampleTree()...)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Local(ctx, src, dest, session.SyncOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// A large file streams through in chunks: the heap stays small whatever the
// file's size.
func TestLargeFileMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 256 MiB")
	}
	src, dest := memTempDir(t), memTempDir(t)
	const size = 256 << 20
	f, err := os.Create(filepath.Join(src, "big.img"))
	if err != nil {
		t.Fatal(err)
	}
	// Sparse except for a few marks, so reading it costs no disk.
	for _, off := range []int64{0, size / 2, size - 8} {
		if _, err := f.WriteAt([]byte("kilnmark"), off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	runtime.GC()
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	st := syncDirs(t, src, dest, session.SyncOptions{})
	close(stop)
	<-sampled
	if st.Bytes != size {
		t.Fatalf("transferred %d bytes, want %d", st.Bytes, size)
	}
	sameTree(t, src, dest)
	if p := peak.Load(); p > 64<<20 {
		t.Errorf("heap in use peaked at %d MiB while streaming a %d MiB file", p>>20, size>>20)
	}
}

// TestHardLinksAndFIFOs: a file with two names arrives as one inode with
// two names (sent once), a FIFO as a FIFO; when the first name is
// replaced, the next sync links the second to the new file.
func TestHardLinksAndFIFOs(t *testing.T) {
	t.Parallel()
	src, dest := t.TempDir(), filepath.Join(t.TempDir(), "dest")
	writeTree(t, src, file("a.txt", "shared", 0o644), dir("d", 0o755))
	if err := os.Link(filepath.Join(src, "a.txt"), filepath.Join(src, "d/b.txt")); err != nil {
		t.Fatal(err)
	}
	if err := mkfifo(filepath.Join(src, "pipe")); err != nil {
		t.Fatal(err)
	}
	same := func(when string) {
		t.Helper()
		a, errA := os.Stat(filepath.Join(dest, "a.txt"))
		b, errB := os.Stat(filepath.Join(dest, "d/b.txt"))
		if errA != nil || errB != nil || !os.SameFile(a, b) {
			t.Errorf("%s: a.txt and d/b.txt are not one file (%v, %v)", when, errA, errB)
		}
		data, err := os.ReadFile(filepath.Join(dest, "d/b.txt"))
		want, _ := os.ReadFile(filepath.Join(src, "a.txt"))
		if err != nil || string(data) != string(want) {
			t.Errorf("%s: d/b.txt = %q, %v; want %q", when, data, err, want)
		}
	}
	st := syncDirs(t, src, dest, session.SyncOptions{})
	same("first sync")
	if st.Transferred != 1 {
		t.Errorf("transferred %d files, want 1 (the link is not sent as data)", st.Transferred)
	}
	if fi, err := os.Lstat(filepath.Join(dest, "pipe")); err != nil || fi.Mode().Type() != fs.ModeNamedPipe {
		t.Errorf("pipe: %v, %v; want a FIFO", fi, err)
	}

	// Replace both names with a new file that has them too.
	for _, p := range []string{"a.txt", "d/b.txt"} {
		if err := os.Remove(filepath.Join(src, p)); err != nil {
			t.Fatal(err)
		}
	}
	writeTree(t, src, file("a.txt", "changed content", 0o644))
	if err := os.Link(filepath.Join(src, "a.txt"), filepath.Join(src, "d/b.txt")); err != nil {
		t.Fatal(err)
	}
	syncDirs(t, src, dest, session.SyncOptions{})
	same("after a change")
}
