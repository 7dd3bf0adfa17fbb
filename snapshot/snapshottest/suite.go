package snapshottest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/internal/testroot"
	"github.com/kiln-build/kiln/snapshot"
)

// NewFunc returns a fresh snapshotter keeping its data under root. The
// suite closes it.
type NewFunc func(t *testing.T, root string) snapshots.Snapshotter

// Run runs the conformance suite against the snapshotters newSn makes.
func Run(t *testing.T, newSn NewFunc) {
	testroot.Require(t, "the snapshot conformance suite mounts filesystems")
	tests := []struct {
		name string
		fn   func(ctx context.Context, t *testing.T, sn snapshots.Snapshotter)
	}{
		{"Lifecycle", testLifecycle},
		{"ViewIsReadOnly", testViewReadOnly},
		{"ChainVisibility", testChainVisibility},
		{"Whiteouts", testWhiteouts},
		{"Remove", testRemove},
		{"Errors", testErrors},
		{"Usage", testUsage},
		{"Walk", testWalk},
		{"Labels", testLabels},
		{"UnmountOnError", testUnmountOnError},
		{"Chain120", testChain120},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			sn := newSn(t, root)
			t.Cleanup(func() {
				if err := sn.Close(); err != nil {
					t.Errorf("close snapshotter: %v", err)
				}
				if m := mountsUnder(t, root); len(m) > 0 {
					t.Errorf("mounts left under the snapshotter root: %v", m)
				}
			})
			tc.fn(context.Background(), t, sn)
		})
	}
}

// File is one entry of a tree as the suite sees it: a regular file's
// content, "dir/" for a directory, "-> target" for a symlink.
type File = string

// Tree maps slash paths (no leading slash) to entries.
type Tree map[string]File

// ReadTree reads the tree under dir.
func ReadTree(t *testing.T, dir string) Tree {
	t.Helper()
	tree := Tree{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case fi.IsDir():
			tree[rel] = "dir/"
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			tree[rel] = "-> " + target
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			tree[rel] = string(b)
		default:
			tree[rel] = fi.Mode().Type().String()
		}
		return nil
	})
	if err != nil {
		t.Fatalf("read tree %s: %v", dir, err)
	}
	return tree
}

// Write makes the entries of tree under dir ("dir/" makes a directory,
// "-> x" a symlink, anything else a file with that content).
func (tree Tree) Write(dir string) error {
	for _, p := range slices.Sorted(func(yield func(string) bool) {
		for k := range tree {
			if !yield(k) {
				return
			}
		}
	}) {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		v := tree[p]
		switch {
		case v == "dir/":
			if err := os.MkdirAll(full, 0o755); err != nil {
				return err
			}
		case strings.HasPrefix(v, "-> "):
			if err := os.Symlink(strings.TrimPrefix(v, "-> "), full); err != nil {
				return err
			}
		default:
			if err := os.WriteFile(full, []byte(v), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// layer makes a committed snapshot name on parent by running change on
// the mounted active snapshot.
func layer(ctx context.Context, t *testing.T, sn snapshots.Snapshotter, name, parent string, change func(dir string) error) {
	t.Helper()
	key := "active-" + name
	if _, err := sn.Prepare(ctx, key, parent); err != nil {
		t.Fatalf("prepare %s on %q: %v", key, parent, err)
	}
	if err := snapshot.WithActive(ctx, sn, key, change); err != nil {
		t.Fatalf("change %s: %v", key, err)
	}
	if err := sn.Commit(ctx, name, key); err != nil {
		t.Fatalf("commit %s as %s: %v", key, name, err)
	}
}

func view(ctx context.Context, t *testing.T, sn snapshots.Snapshotter, name string) Tree {
	t.Helper()
	var tree Tree
	if err := snapshot.WithView(ctx, sn, name, func(dir string) error {
		tree = ReadTree(t, dir)
		return nil
	}); err != nil {
		t.Fatalf("view %s: %v", name, err)
	}
	return tree
}

func checkTree(ctx context.Context, t *testing.T, sn snapshots.Snapshotter, name string, want Tree) {
	t.Helper()
	if diff := cmp.Diff(want, view(ctx, t, sn, name)); diff != "" {
		t.Errorf("view of %s (-want +got):\n%s", name, diff)
	}
}

func wantClass(t *testing.T, what string, err, class error) {
	t.Helper()
	if !errors.Is(err, class) {
		t.Errorf("%s: error %v, want class %q", what, err, class)
	}
}

// mountsUnder lists the mount points below dir from /proc/self/mountinfo.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			out = append(out, fields[4])
		}
	}
	return out
}

func testLifecycle(ctx context.Context, t *testing.T, sn snapshots.Snapshotter) {
	if _, err := sn.Prepare(ctx, "a", ""); err != nil {
		t.Fatal(err)
	}
	info, err := sn.Stat(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if info.Kind != snapshots.KindActive || info.Parent != "" || info.Name != "a" {
		t.Errorf("Stat(a) = %+v; want an active snapshot without parent", info)
	}
	files := Tree{"etc/": "dir/", "etc/hostname": "kiln\n", "bin/sh": "-> busybox"}
	if err := snapshot.WithActive(ctx, sn, "a", files.Write); err != nil {
		t.Fatal(err)
	}
	if err := sn.Commit(ctx, "A", "a"); err != nil {
		t.Fatal(err)
	}
	info, err = sn.Stat(ctx, "A")
	if err != nil {
		t.Fatal(err)
	}
	if info.Kind != snapshots.KindCommitted || info.Name != "A" {
		t.Errorf("Stat(A) = %+v; want committed", info)
	}
	_, err = sn.Stat(ctx, "a")
	wantClass(t, "Stat of the key after commit", err, errdefs.ErrNotFound)
	want := Tree{"etc": "dir/", "etc/hostname": "kiln\n", "bin": "dir/", "bin/sh": "-> busybox"}
	checkTree(ctx, t, sn, "A", want)

	// The key is free again after commit, and a child sees the parent.
	if _, err := sn.Prepare(ctx, "a", "A"); err != nil {
		t.Fatalf("reuse key after commit: %v", err)
	}
	info, err = sn.Stat(ctx, "a")
	if err != nil || info.Parent != "A" {
		t.Fatalf("Stat(a) = %+v, %v; want parent A", info, err)
	}
	var got Tree
	if err := snapshot.WithActive(ctx, sn, "a", func(dir string) error {
		got = ReadTree(t, dir)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("active child of A (-want +got):\n%s", diff)
	}
	// Mounts of a view are read-only; of an active snapshot, writable.
	if _, err := sn.View(ctx, "v", "A"); err != nil {
		t.Fatal(err)
	}
	for key, ro := range map[string]bool{"a": false, "v": true} {
		ms, err := sn.Mounts(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if m.ReadOnly() != ro {
				t.Errorf("mount %+v of %s: read-only = %v, want %v", m, key, m.ReadOnly(), ro)
			}
		}
	}
}

func testViewReadOnly(ctx context.Context, t *testing.T, sn snapshots.Snapshotter) {
	layer(ctx, t, sn, "base", "", Tree{"f": "x"}.Write)
	err := snapshot.WithView(ctx, sn, "base", func(dir string) error {
		return os.WriteFile(filepath.Join(dir, "new"), []byte("y"), 0o644)
	})
	if err == nil {
		t.Fatal("writing through a view succeeded")
	}
	checkTree(ctx, t, sn, "base", Tree{"f": "x"})
}

func testChainVisibility(ctx context.Context, t *testing.T, sn snapshots.Snapshotter) {
	layer(ctx, t, sn, "l1", "", Tree{"a": "1", "shared": "from l1", "d/": "dir/", "d/one": "1"}.Write)
	layer(ctx, t, sn, "l2", "l1", Tree{"b": "2", "shared": "from l2", "d/two": "2"}.Write)
	layer(ctx, t, sn, "l3", "l2", func(dir string) error {
		if err := (Tree{"c": "3", "d/three": "3"}).Write(dir); err != nil {
			return err
		}
		return os.Symlink("d/one", filepath.Join(dir, "link"))
	})
	checkTree(ctx, t, sn, "l1", Tree{"a": "1", "shared": "from l1", "d": "dir/", "d/one": "1"})
	checkTree(ctx, t, sn, "l2", Tree{"a": "1", "b": "2", "shared": "from l2", "d": "dir/", "d/one": "1", "d/two": "2"})
	checkTree(ctx, t, sn, "l3", Tree{
		"a": "1", "b": "2", "c": "3", "shared": "from l2",
		"d": "dir/", "d/one": "1", "d/two": "2", "d/three": "3", "link": "-> d/one",
	})
	// Parents are untouched by their children.
	checkTree(ctx, t, sn, "l1", Tree{"a": "1", "shared": "from l1", "d": "dir/", "d/one": "1"})
}

func testWhiteouts(ctx context.Context, t *testing.T, sn snapshots.Snapshotter) {
	layer(ctx, t, sn, "lower", "", Tree{
		"gone": "x", "keep/": "dir/", "keep/stay": "s", "keep/gone": "g",
		"replaced/": "dir/", "replaced/old": "o", "replaced/sub/deep": "d",
		"tree/a/b/c": "c", "fileToDir": "f",
	}.Write)
	layer(ctx, t, sn, "upper", "lower", func(dir string) error {
		for _, p := range []string{"gone", "keep/gone", "tree", "fileToDir"} {
			if err := os.RemoveAll(filepath.Join(dir, p)); err != nil {
				return err
			}
		}
		// Remove a directory and make a new one in its place: overlay
		// marks it opaque, and nothing below may show through.
		if err := os.RemoveAll(filepath.Join(dir, "replaced")); err != nil {
			return err
		}
		return Tree{"replaced/new": "n", "fileToDir/x": "now a dir"}.Write(dir)
	})
	checkTree(ctx, t, sn, "upper", Tree{
		"keep": "dir/", "keep/stay": "s",
		"replaced": "dir/", "replaced/new": "n",
		"fileToDir": "dir/", "fileToDir/x": "now a dir",
	})
	// And a layer above the whiteouts still does not see the files.
	layer(ctx, t, sn, "top", "upper", Tree{"gone2": "other"}.Write)
	got := view(ctx, t, sn, "top")
	for _, p := range []string{"gone", "keep/gone", "replaced/old", "replaced/sub", "tree"} {
		if _, ok := got[p]; ok {
			t.Errorf("%s is visible two layers above its removal", p)
		}
	}
}

func testRemove(ctx context.Context, t *testing.T, sn snapshots.Snapshotter) {
	layer(ctx, t, sn, "parent", "", Tree{"f": "x"}.Write)
	layer(ctx, t, sn, "child", "parent", Tree{"g": "y"}.Write)
	if err := sn.Remove(ctx, "parent"); err == nil {
		t.Fatal("removed a snapshot that has a child")
	}
	checkTree(ctx, t, sn, "child", Tree{"f": "x", "g": "y"})
	if err := sn.Remove(ctx, "child"); err != nil {
		t.Fatal(err)
	}
	if err := sn.Remove(ctx, "parent"); err != nil {
		t.Fatalf("remove parent once its child is gone: %v", err)
	}
	for _, name := range []string{"parent", "child"} {
		_, err := sn.Stat(ctx, name)
		wantClass(t, "Stat after Remove", err, errdefs.ErrNotFound)
	}
	wantClass(t, "Remove of a missing snapshot", sn.Remove(ctx, "parent"), errdefs.ErrNotFound)
	// An active snapshot can be removed without committing it.
	if _, err := sn.Prepare(ctx, "scratch", ""); err != nil {
		t.Fatal(err)
	}
	if err := sn.Remove(ctx, "scratch"); err != nil {
		t.Errorf("remove active snapshot: %v", err)
	}
}

func testErrors(ctx context.Context, t *testing.T, sn snapshots.Snapshotter) {
	layer(ctx, t, sn, "c", "", Tree{"f": "x"}.Write)
	if _, err := sn.Prepare(ctx, "busy", ""); err != nil {
		t.Fatal(err)
	}
	_, err := sn.Prepare(ctx, "busy", "")
	wantClass(t, "Prepare of an existing key", err, errdefs.ErrAlreadyExists)
	_, err = sn.Prepare(ctx, "x", "no-such-parent")
	wantClass(t, "Prepare on a missing parent", err, errdefs.ErrNotFound)
	_, err = sn.View(ctx, "y", "no-such-parent")
	wantClass(t, "View of a missing parent", err, errdefs.ErrNotFound)
	wantClass(t, "Commit of a missing key", sn.Commit(ctx, "n", "no-such-key"), errdefs.ErrNotFound)
	wantClass(t, "Commit onto an existing name", sn.Commit(ctx, "c", "busy"), errdefs.ErrAlreadyExists)
	if _, err := sn.Prepare(ctx, "on-active", "busy"); err == nil {
		t.Error("Prepare on an active (uncommitted) parent succeeded")
	}
	_, err = sn.Mounts(ctx, "c")
	if err == nil {
		t.Error("Mounts of a committed snapshot succeeded")
	}
}

func testUsage(ctx context.Context, t *testing.T, sn snapshots.Snapshotter) {
	const size = 1 << 20
	if _, err := sn.Prepare(ctx, "a", ""); err != nil {
		t.Fatal(err)
	}
	if err := snapshot.WithActive(ctx, sn, "a", func(dir string) error {
		return os.WriteFile(filepath.Join(dir, "blob"), make([]byte, size), 0o644)
	}); err != nil {
		t.Fatal(err)
	}
	u, err := sn.Usage(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if u.Size < size || u.Inodes < 1 {
		t.Errorf("Usage of an active snapshot holding %d bytes = %+v", size, u)
	}
	if err := sn.Commit(ctx, "A", "a"); err != nil {
		t.Fatal(err)
	}
	uc, err := sn.Usage(ctx, "A")
	if err != nil {
		t.Fatal(err)
	}
	if uc.Size < size {
		t.Errorf("Usage after commit = %+v, want at least %d bytes", uc, size)
	}
	layer(ctx, t, sn, "B", "A", Tree{"small": "x"}.Write)
	ub, err := sn.Usage(ctx, "B")
	if err != nil {
		t.Fatal(err)
	}
	total, err := snapshot.DiskUsage(ctx, sn)
	if err != nil {
		t.Fatal(err)
	}
	if total.Size != uc.Size+ub.Size || total.Inodes != uc.Inodes+ub.Inodes {
		t.Errorf("DiskUsage = %+v, want the sum of %+v and %+v", total, uc, ub)
	}
	_, err = sn.Usage(ctx, "missing")
	wantClass(t, "Usage of a missing snapshot", err, errdefs.ErrNotFound)
}

func testWalk(ctx context.Context, t *testing.T, sn snapshots.Snapshotter) {
	layer(ctx, t, sn, "base", "", Tree{"f": "x"}.Write)
	if _, err := sn.Prepare(ctx, "work", "base"); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.View(ctx, "look", "base"); err != nil {
		t.Fatal(err)
	}
	type entry struct {
		Kind   snapshots.Kind
		Parent string
	}
	got := map[string]entry{}
	if err := sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		got[info.Name] = entry{info.Kind, info.Parent}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := map[string]entry{
		"base": {snapshots.KindCommitted, ""},
		"work": {snapshots.KindActive, "base"},
		"look": {snapshots.KindView, "base"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Walk (-want +got):\n%s", diff)
	}
	var parents []string
	if err := sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		parents = append(parents, info.Name)
		return nil
	}, `parent==base`); err != nil {
		t.Fatal(err)
	}
	slices.Sort(parents)
	if diff := cmp.Diff([]string{"look", "work"}, parents); diff != "" {
		t.Errorf("Walk with parent==base filter (-want +got):\n%s", diff)
	}
}

func testLabels(ctx context.Context, t *testing.T, sn snapshots.Snapshotter) {
	labels := map[string]string{"kiln.test/owner": "suite"}
	if _, err := sn.Prepare(ctx, "a", "", snapshots.WithLabels(labels)); err != nil {
		t.Fatal(err)
	}
	if err := sn.Commit(ctx, "A", "a", snapshots.WithLabels(map[string]string{"kiln.test/layer": "1"})); err != nil {
		t.Fatal(err)
	}
	info, err := sn.Stat(ctx, "A")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"kiln.test/layer": "1"}, info.Labels); diff != "" {
		t.Errorf("labels after commit (-want +got):\n%s", diff)
	}
	info.Labels = map[string]string{"kiln.test/layer": "2", "kiln.test/extra": "x"}
	if _, err := sn.Update(ctx, info, "labels.kiln.test/extra"); err != nil {
		t.Fatal(err)
	}
	info, err = sn.Stat(ctx, "A")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"kiln.test/layer": "1", "kiln.test/extra": "x"}
	if diff := cmp.Diff(want, info.Labels); diff != "" {
		t.Errorf("labels after Update of one field (-want +got):\n%s", diff)
	}
}

func testUnmountOnError(ctx context.Context, t *testing.T, sn snapshots.Snapshotter) {
	layer(ctx, t, sn, "base", "", Tree{"f": "x"}.Write)
	failure := errors.New("callback failed")
	var seen string
	err := snapshot.WithView(ctx, sn, "base", func(dir string) error {
		seen = dir
		return failure
	})
	if !errors.Is(err, failure) {
		t.Fatalf("WithView = %v, want the callback's error", err)
	}
	if _, err := os.Stat(seen); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("mount point %s still exists after WithView (stat: %v)", seen, err)
	}
	func() {
		defer func() {
			if r := recover(); r == nil {
				t.Error("panic in the callback was swallowed")
			}
		}()
		_ = snapshot.WithView(ctx, sn, "base", func(dir string) error {
			seen = dir
			panic("callback panicked")
		})
	}()
	if m := mountsUnder(t, filepath.Dir(seen)); len(m) > 0 {
		t.Errorf("mounts left after a panicking callback: %v", m)
	}
	// No view snapshots are left behind either.
	if err := sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		if info.Kind == snapshots.KindView {
			return fmt.Errorf("view %s left behind", info.Name)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}
