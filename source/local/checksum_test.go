package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/internal/testroot"
)

func baseTree() []tentry {
	return []tentry{
		{path: "a.txt", data: "alpha"},
		{path: "b.txt", data: "bravo"},
		{path: "c.go", data: "package c"},
		{path: "src", dir: true},
		{path: "src/main.go", data: "package main"},
		{path: "src/util", dir: true},
		{path: "src/util/u.go", data: "package util"},
		{path: "src/link-out", target: "../b.txt"},
		{path: "bin", dir: true},
		{path: "bin/run", data: "#!/bin/sh", mode: 0o755},
		{path: "to-a", target: "a.txt"},
		{path: "to-src", target: "src"},
	}
}

func mustChecksum(t *testing.T, dir string, sel ...string) digest.Digest {
	t.Helper()
	c, err := Checksum(context.Background(), dir, sel)
	if err != nil {
		t.Fatalf("Checksum(%q): %v", sel, err)
	}
	return c.Digest
}

// TestChecksumChanges checks which changes change which selections.
func TestChecksumChanges(t *testing.T) {
	t.Parallel()
	later := fixedTime.Add(time.Hour)
	tests := []struct {
		name      string
		change    func(t *testing.T, dir string)
		changed   [][]string // selections whose digest must change
		unchanged [][]string // selections whose digest must not
	}{{
		name: "touch",
		change: func(t *testing.T, dir string) {
			for _, p := range []string{"a.txt", "src", "src/main.go"} {
				if err := os.Chtimes(filepath.Join(dir, p), later, later); err != nil {
					t.Fatal(err)
				}
			}
		},
		unchanged: [][]string{nil, {"a.txt"}, {"src"}, {"*.txt"}},
	}, {
		name:      "one byte",
		change:    func(t *testing.T, dir string) { replaceFile(t, filepath.Join(dir, "a.txt"), "alphA") },
		changed:   [][]string{nil, {"a.txt"}, {"*.txt"}, {"[ab].txt"}, {"to-a"}, {"."}},
		unchanged: [][]string{{"b.txt"}, {"src"}, {"*.go"}, {"c.go", "src/main.go"}},
	}, {
		name: "mode",
		change: func(t *testing.T, dir string) {
			if err := os.Chmod(filepath.Join(dir, "bin/run"), 0o700); err != nil {
				t.Fatal(err)
			}
		},
		changed:   [][]string{nil, {"bin"}, {"bin/run"}, {"bin/*"}},
		unchanged: [][]string{{"a.txt"}, {"src"}},
	}, {
		name: "setuid",
		change: func(t *testing.T, dir string) {
			if err := os.Chmod(filepath.Join(dir, "bin/run"), 0o755|os.ModeSetuid); err != nil {
				t.Fatal(err)
			}
		},
		changed: [][]string{{"bin/run"}},
	}, {
		name: "directory mode",
		change: func(t *testing.T, dir string) {
			if err := os.Chmod(filepath.Join(dir, "src/util"), 0o700); err != nil {
				t.Fatal(err)
			}
		},
		changed:   [][]string{{"src"}, {"src/util"}},
		unchanged: [][]string{{"src/main.go"}, {"src/util/u.go"}},
	}, {
		name:      "file deep in a selected directory",
		change:    func(t *testing.T, dir string) { replaceFile(t, filepath.Join(dir, "src/util/u.go"), "package util2") },
		changed:   [][]string{nil, {"src"}, {"src/util"}, {"src/*/u.go"}, {"to-src"}, {"to-src/util"}},
		unchanged: [][]string{{"src/main.go"}, {"a.txt", "b.txt"}},
	}, {
		name:      "new file in a selected directory",
		change:    func(t *testing.T, dir string) { mkTree(t, dir, tentry{path: "src/new.go", data: "x"}) },
		changed:   [][]string{nil, {"src"}, {"src/*.go"}},
		unchanged: [][]string{{"src/util"}, {"src/main.go"}},
	}, {
		name:      "new file matching a wildcard",
		change:    func(t *testing.T, dir string) { mkTree(t, dir, tentry{path: "d.txt", data: "delta"}) },
		changed:   [][]string{{"*.txt"}, {"?.txt"}},
		unchanged: [][]string{{"[ab].txt"}, {"a.txt"}, {"*.go"}},
	}, {
		name: "target of a link inside the selection",
		change: func(t *testing.T, dir string) {
			replaceFile(t, filepath.Join(dir, "b.txt"), "bravo2")
		},
		// Inside src, link-out is hashed as a link: what it points to is
		// not part of src. Named by the selector, it is followed (COPY
		// copies the target).
		unchanged: [][]string{{"src"}, {"src/main.go", "src/util"}},
		changed:   [][]string{{"b.txt"}, {"src/link-out"}},
	}, {
		name: "link retargeted",
		change: func(t *testing.T, dir string) {
			p := filepath.Join(dir, "src/link-out")
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("../a.txt", p); err != nil {
				t.Fatal(err)
			}
		},
		changed:   [][]string{{"src"}, {"src/link-out"}},
		unchanged: [][]string{{"src/main.go"}},
	}, {
		name: "owner",
		change: func(t *testing.T, dir string) {
			testroot.Require(t, "chown")
			if err := os.Lchown(filepath.Join(dir, "a.txt"), 1234, 1234); err != nil {
				t.Fatal(err)
			}
		},
		unchanged: [][]string{nil, {"a.txt"}},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			mkTree(t, dir, baseTree()...)
			sels := append(slices.Clone(tc.changed), tc.unchanged...)
			before := make([]digest.Digest, len(sels))
			for i, s := range sels {
				before[i] = mustChecksum(t, dir, s...)
			}
			tc.change(t, dir)
			for i, s := range sels {
				after := mustChecksum(t, dir, s...)
				if want := i < len(tc.changed); (after != before[i]) != want {
					t.Errorf("selection %q: digest changed = %v, want %v", s, after != before[i], want)
				}
			}
		})
	}
}

func TestChecksumFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mkTree(t, dir, baseTree()...)
	tests := []struct {
		sel  []string
		want []string
	}{
		{sel: []string{"src"}, want: []string{"src", "src/link-out", "src/main.go", "src/util", "src/util/u.go"}},
		{sel: []string{"*.txt", "/c.go"}, want: []string{"a.txt", "b.txt", "c.go"}},
		{sel: []string{"../../a.txt"}, want: []string{"a.txt"}},
		{sel: []string{"to-a"}, want: []string{"a.txt", "to-a"}},
		{sel: []string{"to-src/util"}, want: []string{"src/util", "src/util/u.go"}},
		{sel: []string{"s*/u*/*.go"}, want: []string{"src/util/u.go"}},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.sel, ","), func(t *testing.T) {
			t.Parallel()
			c, err := Checksum(context.Background(), dir, tc.sel)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for p := range c.Files {
				got = append(got, p)
			}
			slices.Sort(got)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Files (-want +got):\n%s", diff)
			}
			if c.Truncated {
				t.Error("Truncated set for a small selection")
			}
		})
	}

	// Everything: no selectors, ".", "/" agree.
	all := mustChecksum(t, dir)
	for _, sel := range []string{".", "/", "./", ""} {
		if d := mustChecksum(t, dir, sel); d != all {
			t.Errorf("selector %q = %s, want %s (as no selectors)", sel, d, all)
		}
	}
}

func TestChecksumNotFound(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mkTree(t, dir, baseTree()...)
	tests := []struct {
		sel  string
		want string
	}{
		{"missing.txt", `"/missing.txt": not found`},
		{"src/nope/x", `"/src/nope/x": not found`},
		{"a.txt/x", `"/a.txt/x": not found`},
	}
	for _, tc := range tests {
		_, err := Checksum(context.Background(), dir, []string{"a.txt", tc.sel})
		if !errors.Is(err, errdefs.ErrNotFound) || err.Error() != tc.want {
			t.Errorf("Checksum(%q) = %v, want not found %q", tc.sel, err, tc.want)
		}
	}
	if _, err := Checksum(context.Background(), dir, []string{"[a-"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("bad pattern: err = %v, want invalid argument", err)
	}
}

// TestChecksumWildcards covers the wildcard rules BuildKit's COPY has: a
// wildcard that matches nothing selects nothing (no error, also alone),
// and "**" reaches every depth (COPY --parents).
func TestChecksumWildcards(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mkTree(t, dir, baseTree()...)
	mkTree(t, dir, tentry{path: "src/util/deep", dir: true}, tentry{path: "src/util/deep/d.go", data: "package deep"})
	for _, sel := range [][]string{{"*.rs"}, {"a.txt", "nomatch*.xyz"}, {"src/**/*.rs"}} {
		if _, err := Checksum(context.Background(), dir, sel); err != nil {
			t.Errorf("Checksum(%q) = %v, want no error", sel, err)
		}
	}
	if a, b := mustChecksum(t, dir, "a.txt"), mustChecksum(t, dir, "a.txt", "nomatch*.xyz"); a == b {
		t.Errorf("an empty wildcard group should still count in the digest (it is a different COPY)")
	}
	before := mustChecksum(t, dir, "src/**/*.go")
	if err := os.WriteFile(filepath.Join(dir, "src/util/deep/d.go"), []byte("package changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if after := mustChecksum(t, dir, "src/**/*.go"); after == before {
		t.Errorf(`"src/**/*.go" did not change when src/util/deep/d.go did: "**" must select every depth`)
	}
}

func TestChecksumTruncated(t *testing.T) {
	t.Parallel()
	dir := memTempDir(t)
	for i := range MaxFiles + 5 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c, err := Checksum(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Truncated || len(c.Files) != MaxFiles {
		t.Errorf("Truncated = %v with %d files, want true with %d", c.Truncated, len(c.Files), MaxFiles)
	}
}

// The hash cache is trusted for a file whose identity (inode, size, mtime,
// mode) did not change: the store never modifies files in place. A file
// replaced by rename is hashed again.
func TestHashCache(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mkTree(t, dir, baseTree()...)
	file := filepath.Join(t.TempDir(), "hashes.gob")
	hc := newHashCache(file)
	ctx := context.Background()
	first, err := checksum(ctx, dir, nil, hc)
	if err != nil {
		t.Fatal(err)
	}

	// Rewrite a.txt in place keeping inode, size and mtime: a cached
	// digest is used, proving the file was not read again.
	p := filepath.Join(dir, "a.txt")
	if err := os.WriteFile(p, []byte("ALPHA"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, fixedTime, fixedTime); err != nil {
		t.Fatal(err)
	}
	cached, err := checksum(ctx, dir, nil, hc)
	if err != nil {
		t.Fatal(err)
	}
	if cached.Digest != first.Digest {
		t.Fatalf("cached checksum = %s, want %s (the cache was not used)", cached.Digest, first.Digest)
	}
	fresh := mustChecksum(t, dir)
	if fresh == first.Digest {
		t.Fatal("uncached checksum did not see the change")
	}

	// The persisted cache gives the same answers.
	if err := hc.save(); err != nil {
		t.Fatal(err)
	}
	loaded := loadHashCache(file)
	again, err := checksum(ctx, dir, nil, loaded)
	if err != nil {
		t.Fatal(err)
	}
	if again.Digest != first.Digest {
		t.Errorf("checksum with the reloaded cache = %s, want %s", again.Digest, first.Digest)
	}

	// Replacing by rename (what a sync does) is seen.
	replaceFile(t, p, "ALPHA")
	renamed, err := checksum(ctx, dir, nil, loaded)
	if err != nil {
		t.Fatal(err)
	}
	if renamed.Digest != fresh {
		t.Errorf("checksum after a rename = %s, want %s", renamed.Digest, fresh)
	}

	// A corrupt cache file is ignored.
	if err := os.WriteFile(file, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n := len(loadHashCache(file).m); n != 0 {
		t.Errorf("corrupt cache loaded %d entries", n)
	}
}
