package file_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/v2/core/mount"

	"github.com/kiln-build/kiln/graph"
	"github.com/kiln-build/kiln/ops"
	"github.com/kiln-build/kiln/ops/file"
	"github.com/kiln-build/kiln/snapshot"
)

// layer commits a snapshot on parent after fn changed it through its mount.
func (e *env) layer(parent ops.Ref, fn func(dir string) error) ops.Ref {
	e.t.Helper()
	a, err := e.snaps.New(e.ctx, parent, "layer")
	if err != nil {
		e.t.Fatal(err)
	}
	if err := mount.WithTempMount(e.ctx, a.Mounts(), fn); err != nil {
		e.t.Fatal(err)
	}
	r, err := a.Commit(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { r.Release(context.Background()) })
	return r
}

// copyFrom runs a copy of src from the snapshot from onto base.
func (e *env) copyFrom(base, from ops.Ref, src []string, dest string, mod ...func(*graph.CopyAction)) ops.Ref {
	e.t.Helper()
	img := graph.NewVertex(graph.Op{Source: &graph.SourceOp{Image: &graph.ImageSource{Ref: "docker.io/library/base:latest"}}}, graph.Meta{})
	stage := graph.NewVertex(graph.Op{Source: &graph.SourceOp{Image: &graph.ImageSource{Ref: "docker.io/library/stage:latest"}}}, graph.Meta{})
	a := &graph.CopyAction{Input: 1, Src: src, Dest: dest, FollowSymlinks: true}
	for _, m := range mod {
		m(a)
	}
	v := graph.NewVertex(graph.Op{File: &graph.FileOp{Base: 0, Actions: []graph.FileAction{{Copy: a}}}}, graph.Meta{}, img, stage)
	op, err := file.New(v, e.snaps, file.WithMountDir(e.mnt))
	if err != nil {
		e.t.Fatal(err)
	}
	ref, err := op.Exec(e.ctx, []ops.Ref{base, from})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { ref.Release(context.Background()) })
	return ref
}

func (e *env) upperFile(ref ops.Ref, p string) os.FileInfo {
	e.t.Helper()
	upper, err := e.snaps.Snapshotter().UpperDir(e.ctx, ref.ID())
	if err != nil {
		e.t.Fatal(err)
	}
	fi, err := os.Lstat(filepath.Join(upper, p))
	if err != nil {
		return nil
	}
	return fi
}

// TestLinkFromSnapshotLayers: COPY --from a stage hard-links the layer
// files behind the stage's view, following overlay's whiteouts and opaque
// directories, and copies what it cannot link.
func TestLinkFromSnapshotLayers(t *testing.T) {
	e := newEnv(t, snapshot.KindOverlay)
	lower := e.layer(nil, func(dir string) error {
		return apply(dir,
			wfile("lib/a.txt", "A", 0o644), wfile("lib/gone.txt", "gone", 0o644),
			wfile("lib/dir/inner", "inner", 0o644), wfile("lib/owned.txt", "O", 0o644), wchown("lib/owned.txt", 1000, 1000))
	})
	top := e.layer(lower, func(dir string) error {
		if err := os.Remove(filepath.Join(dir, "lib/gone.txt")); err != nil {
			return err
		}
		if err := os.RemoveAll(filepath.Join(dir, "lib/dir")); err != nil {
			return err
		}
		return apply(dir, wfile("lib/dir/new", "new", 0o644), wfile("bin/app", "app", 0o755))
	})
	base := e.base(wfile("etc/passwd", "root:x:0:0::/:/bin/sh\n", 0o644))
	res := e.copyFrom(base, top, []string{"lib", "bin"}, "/out/")

	got := e.tree(res)
	for p, want := range map[string]string{"out/a.txt": "A", "out/dir/new": "new", "out/app": "app", "out/owned.txt": "O"} {
		if got[p].Data != want {
			t.Errorf("%s = %+v, want data %q", p, got[p], want)
		}
	}
	for _, p := range []string{"out/gone.txt", "out/dir/inner"} {
		if _, ok := got[p]; ok {
			t.Errorf("%s was copied though the stage deleted it", p)
		}
	}
	// COPY --from keeps owners (as BuildKit), so a file owned by a user
	// links like any other.
	if got["out/owned.txt"].Owner != "1000:1000" {
		t.Errorf("out/owned.txt owner = %s, want 1000:1000 (kept)", got["out/owned.txt"].Owner)
	}
	for out, src := range map[string]struct {
		ref ops.Ref
		p   string
	}{"out/a.txt": {lower, "lib/a.txt"}, "out/app": {top, "bin/app"}, "out/dir/new": {top, "lib/dir/new"}, "out/owned.txt": {lower, "lib/owned.txt"}} {
		a, b := e.upperFile(res, out), e.upperFile(src.ref, src.p)
		if a == nil || b == nil || !os.SameFile(a, b) {
			t.Errorf("%s is not a hard link of the stage's layer file %s", out, src.p)
		}
	}
	chowned := e.copyFrom(base, top, []string{"lib/a.txt"}, "/c/", chown("7", "7"))
	if a, b := e.upperFile(chowned, "c/a.txt"), e.upperFile(lower, "lib/a.txt"); a == nil || os.SameFile(a, b) {
		t.Errorf("a file that changes owner (--chown) was linked instead of copied")
	}
}
