package file_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/mount"

	"github.com/kiln-build/kiln/graph"
	"github.com/kiln-build/kiln/internal/testroot"
	"github.com/kiln-build/kiln/ops"
	"github.com/kiln-build/kiln/ops/file"
	"github.com/kiln-build/kiln/snapshot"
	"github.com/kiln-build/kiln/worker"
)

var kinds = []string{snapshot.KindOverlay, snapshot.KindNative}

// env is one test's snapshotter, context directory and mount directory.
type env struct {
	t     testing.TB
	ctx   context.Context
	snaps *worker.Snapshots
	kind  string
	ctxt  string // the build context directory
	mnt   string
}

func requireRoot(t testing.TB) {
	t.Helper()
	testroot.Require(t, "file ops mount snapshots and chown")
}

func newEnv(t testing.TB, kind string) *env {
	t.Helper()
	requireRoot(t)
	root := t.TempDir()
	sn, err := snapshot.New(root, kind)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sn.Close() })
	s, err := worker.NewSnapshots(context.Background(), sn)
	if err != nil {
		t.Fatal(err)
	}
	// The context lives on the same filesystem as the snapshots, as the
	// daemon keeps both under its root.
	c := filepath.Join(root, "context")
	if err := os.Mkdir(c, 0o755); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, ctx: context.Background(), snaps: s, kind: kind, ctxt: c, mnt: filepath.Join(root, "mnt")}
}

// dirRef is a build context result: a plain directory.
type dirRef struct{ dir string }

func (d dirRef) ID() string                    { return "" }
func (d dirRef) Release(context.Context) error { return nil }
func (d dirRef) Dir() string                   { return d.dir }

var (
	_ ops.Ref = dirRef{}
	_ ops.Dir = dirRef{}
)

// fsOp changes a directory tree.
type fsOp func(dir string) error

func wfile(p, data string, mode os.FileMode) fsOp {
	return func(dir string) error {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, []byte(data), mode); err != nil {
			return err
		}
		return os.Chmod(full, mode)
	}
}

func wdir(p string, mode os.FileMode) fsOp {
	return func(dir string) error {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(full, mode); err != nil {
			return err
		}
		return os.Chmod(full, mode)
	}
}

func wlink(target, p string) fsOp {
	return func(dir string) error {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		return os.Symlink(target, full)
	}
}

func wchown(p string, uid, gid int) fsOp {
	return func(dir string) error { return os.Lchown(filepath.Join(dir, p), uid, gid) }
}

func wmtime(p string, tm time.Time) fsOp {
	return func(dir string) error { return os.Chtimes(filepath.Join(dir, p), tm, tm) }
}

func apply(dir string, fops ...fsOp) error {
	for _, op := range fops {
		if err := op(dir); err != nil {
			return err
		}
	}
	return nil
}

// context fills the build context.
func (e *env) context(fops ...fsOp) {
	e.t.Helper()
	if err := apply(e.ctxt, fops...); err != nil {
		e.t.Fatal(err)
	}
}

// base commits a snapshot made by fops.
func (e *env) base(fops ...fsOp) ops.Ref {
	e.t.Helper()
	a, err := e.snaps.New(e.ctx, nil, "base")
	if err != nil {
		e.t.Fatal(err)
	}
	err = mount.WithTempMount(e.ctx, a.Mounts(), func(dir string) error { return apply(dir, fops...) })
	if err != nil {
		e.t.Fatal(err)
	}
	r, err := a.Commit(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { r.Release(context.Background()) })
	return r
}

// vertex builds a file vertex on inputs [base image, build context].
func fileVertex(actions ...graph.FileAction) *graph.Vertex {
	img := graph.NewVertex(graph.Op{Source: &graph.SourceOp{Image: &graph.ImageSource{Ref: "docker.io/library/base:latest"}}}, graph.Meta{})
	local := graph.NewVertex(graph.Op{Source: &graph.SourceOp{Local: &graph.LocalSource{Name: "context"}}}, graph.Meta{})
	return graph.NewVertex(graph.Op{File: &graph.FileOp{Base: 0, Actions: actions}}, graph.Meta{}, img, local)
}

// run executes actions on base with the build context as input 1.
func (e *env) run(base ops.Ref, opts []file.Option, actions ...graph.FileAction) (ops.Ref, error) {
	e.t.Helper()
	op, err := file.New(fileVertex(actions...), e.snaps, append([]file.Option{file.WithMountDir(e.mnt)}, opts...)...)
	if err != nil {
		return nil, err
	}
	ref, err := op.Exec(e.ctx, []ops.Ref{base, dirRef{e.ctxt}})
	if err != nil {
		return nil, err
	}
	e.t.Cleanup(func() { ref.Release(context.Background()) })
	return ref, nil
}

func (e *env) mustRun(base ops.Ref, actions ...graph.FileAction) ops.Ref {
	e.t.Helper()
	r, err := e.run(base, nil, actions...)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// node is what a test sees of one entry of a result.
type node struct {
	Mode   string // "-rw-r--r--", "drwxr-xr-x", "Lrwxrwxrwx"
	Owner  string // "uid:gid"
	Data   string `json:",omitempty"`
	Target string `json:",omitempty"`
}

func (n node) String() string { return fmt.Sprintf("%s %s %q %q", n.Mode, n.Owner, n.Data, n.Target) }

// withDir mounts a read-only view of ref for fn.
func (e *env) withDir(ref ops.Ref, fn func(dir string) error) {
	e.t.Helper()
	if err := ref.(*worker.SnapshotRef).WithDir(e.ctx, fn); err != nil {
		e.t.Fatal(err)
	}
}

// tree reads every entry of ref, keyed by slash path without a leading "/".
func (e *env) tree(ref ops.Ref) map[string]node {
	e.t.Helper()
	out := map[string]node{}
	e.withDir(ref, func(dir string) error {
		return filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
			if err != nil || p == dir {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			st := fi.Sys().(*syscall.Stat_t)
			n := node{Mode: modeString(fi), Owner: fmt.Sprintf("%d:%d", st.Uid, st.Gid)}
			switch {
			case fi.Mode().IsRegular():
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				n.Data = string(b)
			case fi.Mode()&os.ModeSymlink != 0:
				n.Target, _ = os.Readlink(p)
			}
			out[filepath.ToSlash(rel)] = n
			return nil
		})
	})
	return out
}

func modeString(fi os.FileInfo) string {
	s := fi.Mode().String()
	return strings.Replace(s, "L", "l", 1)
}

// mtimes returns the modification times (Unix seconds) of paths in ref.
func (e *env) mtimes(ref ops.Ref, paths ...string) map[string]int64 {
	e.t.Helper()
	out := map[string]int64{}
	e.withDir(ref, func(dir string) error {
		for _, p := range paths {
			fi, err := os.Lstat(filepath.Join(dir, p))
			if err != nil {
				return err
			}
			out[p] = fi.ModTime().Unix()
		}
		return nil
	})
	return out
}

func keys(m map[string]node) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func cp(src []string, dest string, mod ...func(*graph.CopyAction)) graph.FileAction {
	a := &graph.CopyAction{Input: 1, Src: src, Dest: dest, FollowSymlinks: true}
	for _, m := range mod {
		m(a)
	}
	return graph.FileAction{Copy: a}
}
