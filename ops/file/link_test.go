package file_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/kiln-build/kiln/graph"
	"github.com/kiln-build/kiln/ops"
	"github.com/kiln-build/kiln/ops/file"
	"github.com/kiln-build/kiln/snapshot"
)

// linked reports whether path p of the committed result ref is the context
// file ctxPath itself (a hard link in the snapshot's upper directory).
func (e *env) linked(ref ops.Ref, p, ctxPath string) bool {
	e.t.Helper()
	upper, err := e.snaps.Snapshotter().UpperDir(e.ctx, ref.ID())
	if err != nil {
		e.t.Fatal(err)
	}
	a, err := os.Lstat(filepath.Join(upper, p))
	if err != nil {
		return false
	}
	b, err := os.Lstat(filepath.Join(e.ctxt, ctxPath))
	if err != nil {
		e.t.Fatal(err)
	}
	return os.SameFile(a, b)
}

func TestLinkFastPath(t *testing.T) {
	e := newEnv(t, snapshot.KindOverlay)
	e.context(
		wfile("a.txt", "A", 0o644), wfile("b.txt", "B", 0o600),
		wfile("tree/x", "X", 0o644), wfile("tree/sub/y", "Y", 0o755),
		wfile("owned", "O", 0o644), wchown("owned", 1234, 1234),
		wfile("s1/x", "file", 0o644), wfile("s2/x/y", "in dir", 0o644),
		wfile("t/x", "file over dir", 0o644),
	)
	base := e.base(
		wfile("etc/passwd", "root:x:0:0::/:/bin/sh\napp:x:1000:1000::/:/bin/sh\n", 0o644),
		wdir("existing", 0o700), wchown("existing", 5, 5), wfile("existing/old.txt", "old", 0o644),
		wfile("t/x/inner", "lower", 0o644),
		wfile("replace.txt", "lower file", 0o644),
	)
	ts := int64(1600000000)
	cases := []struct {
		name    string
		actions []graph.FileAction
		want    map[string]node
		absent  []string
		links   map[string]string // result path → context path, hard-linked
		copies  map[string]string // result path → context path, copied
	}{
		{"file under a lower directory", []graph.FileAction{cp([]string{"a.txt"}, "/existing/deep/")},
			map[string]node{"existing": d("drwx------", "5:5"), "existing/deep": d(dir, root),
				"existing/deep/a.txt": reg(rw, root, "A"), "existing/old.txt": reg(rw, root, "old")},
			nil, map[string]string{"existing/deep/a.txt": "a.txt"}, nil},
		{"directory tree", []graph.FileAction{cp([]string{"tree"}, "/app/")},
			map[string]node{"app/x": reg(rw, root, "X"), "app/sub/y": reg("-rwxr-xr-x", root, "Y")},
			nil, map[string]string{"app/x": "tree/x", "app/sub/y": "tree/sub/y"}, nil},
		{"replaces a lower file", []graph.FileAction{cp([]string{"a.txt"}, "/replace.txt")},
			map[string]node{"replace.txt": reg(rw, root, "A")}, nil, map[string]string{"replace.txt": "a.txt"}, nil},
		{"chown copies", []graph.FileAction{cp([]string{"a.txt"}, "/c/", chown("app", ""))},
			map[string]node{"c/a.txt": reg(rw, "1000:1000", "A")}, nil, nil, map[string]string{"c/a.txt": "a.txt"}},
		{"chmod copies", []graph.FileAction{cp([]string{"a.txt"}, "/c/", chmod("0600"))},
			map[string]node{"c/a.txt": reg("-rw-------", root, "A")}, nil, nil, map[string]string{"c/a.txt": "a.txt"}},
		{"timestamp copies", []graph.FileAction{cp([]string{"a.txt"}, "/c/", func(a *graph.CopyAction) { a.Timestamp = &ts })},
			map[string]node{"c/a.txt": reg(rw, root, "A")}, nil, nil, map[string]string{"c/a.txt": "a.txt"}},
		{"context file not owned by root copies", []graph.FileAction{cp([]string{"owned"}, "/c/")},
			map[string]node{"c/owned": reg(rw, root, "O")}, nil, nil, map[string]string{"c/owned": "owned"}},
		{"file replacing a lower directory copies", []graph.FileAction{cp([]string{"t"}, "/t/")},
			map[string]node{"t/x": reg(rw, root, "file over dir")}, []string{"t/x/inner"}, nil, map[string]string{"t/x": "t/x"}},
		{"two directories into one keep both", []graph.FileAction{cp([]string{"tree", "s2"}, "/m/")},
			map[string]node{"m/x": d(dir, root), "m/x/y": reg(rw, root, "in dir"), "m/sub/y": reg("-rwxr-xr-x", root, "Y")},
			nil, map[string]string{"m/x/y": "s2/x/y", "m/sub/y": "tree/sub/y"}, nil},
		{"a later directory replaces a scheduled link", []graph.FileAction{cp([]string{"s1", "s2"}, "/d/")},
			map[string]node{"d/x": d(dir, root), "d/x/y": reg(rw, root, "in dir")}, nil, map[string]string{"d/x/y": "s2/x/y"}, nil},
		{"a later file replaces a directory", []graph.FileAction{cp([]string{"s2", "s1"}, "/d/")},
			map[string]node{"d/x": reg(rw, root, "file")}, []string{"d/x/y"}, nil, nil},
		{"actions around links", []graph.FileAction{
			cp([]string{"a.txt"}, "/d/"),
			{Mkdir: &graph.MkdirAction{Path: "/d/sub", Mode: 0o700}},
			cp([]string{"b.txt"}, "/d/sub/"),
			{Rm: &graph.RmAction{Path: "/d/a.txt"}},
			{Mkfile: &graph.MkfileAction{Path: "/d/sub/new", Mode: 0o644, Data: []byte("new")}},
		}, map[string]node{"d/sub": d("drwx------", root), "d/sub/b.txt": reg("-rw-------", root, "B"), "d/sub/new": reg(rw, root, "new")},
			[]string{"d/a.txt"}, map[string]string{"d/sub/b.txt": "b.txt"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			ref := e.mustRun(base, tc.actions...)
			checkTree(t, e.tree(ref), tc.want, tc.absent)
			for p, c := range tc.links {
				if !e.linked(ref, p, c) {
					t.Errorf("%s is not a hard link of the context's %s", p, c)
				}
			}
			for p, c := range tc.copies {
				if e.linked(ref, p, c) {
					t.Errorf("%s is a hard link, want a copy", p)
				}
			}
		})
	}

	t.Run("links off", func(t *testing.T) {
		e.t = t
		ref, err := e.run(base, []file.Option{file.WithoutLinks()}, cp([]string{"a.txt"}, "/d/"))
		if err != nil {
			t.Fatal(err)
		}
		if e.linked(ref, "d/a.txt", "a.txt") {
			t.Error("WithoutLinks: d/a.txt is a hard link")
		}
	})

	t.Run("empty base links at once", func(t *testing.T) {
		e.t = t
		v := fileVertex(cp([]string{"tree"}, "/app/"))
		v.Op.File.Base = graph.NoInput
		op, err := file.New(v, e.snaps, file.WithMountDir(e.mnt))
		if err != nil {
			t.Fatal(err)
		}
		ref, err := op.Exec(e.ctx, []ops.Ref{nil, dirRef{e.ctxt}})
		if err != nil {
			t.Fatal(err)
		}
		defer ref.Release(e.ctx)
		checkTree(t, e.tree(ref), map[string]node{"app": d(dir, root), "app/sub/y": reg("-rwxr-xr-x", root, "Y")}, nil)
		if !e.linked(ref, "app/sub/y", "tree/sub/y") {
			t.Error("app/sub/y is not a hard link of the context file")
		}
	})
}

func TestHardLinksKept(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, kind)
			e.context(wfile("h/one", "H", 0o644), func(dir string) error {
				return os.Link(filepath.Join(dir, "h/one"), filepath.Join(dir, "h/two"))
			})
			base := e.base()
			// Links are kept within one source and not between two
			// sources, as in BuildKit.
			for _, tc := range []struct {
				name    string
				actions []graph.FileAction
				same    bool
			}{
				{"plain", []graph.FileAction{cp([]string{"h"}, "/h/")}, true},
				{"chowned", []graph.FileAction{cp([]string{"h"}, "/h/", chown("7", "7"))}, true},
				{"two sources", []graph.FileAction{cp([]string{"h/one", "h/two"}, "/h/")}, false},
				{"two sources chowned", []graph.FileAction{cp([]string{"h/one", "h/two"}, "/h/", chown("7", "7"))}, false},
			} {
				t.Run(tc.name, func(t *testing.T) {
					e.t = t
					ref := e.mustRun(base, tc.actions...)
					e.withDir(ref, func(dir string) error {
						a, err := os.Stat(filepath.Join(dir, "h/one"))
						if err != nil {
							return err
						}
						b, err := os.Stat(filepath.Join(dir, "h/two"))
						if err != nil {
							return err
						}
						if os.SameFile(a, b) != tc.same {
							t.Errorf("h/one and h/two the same file: %v, want %v", !tc.same, tc.same)
						}
						return nil
					})
				})
			}
		})
	}
}

func TestExecCanceled(t *testing.T) {
	e := newEnv(t, snapshot.KindNative)
	e.context(wfile("a.txt", "A", 0o644))
	base := e.base()
	op, err := file.New(fileVertex(cp([]string{"a.txt"}, "/x")), e.snaps, file.WithMountDir(e.mnt))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(e.ctx)
	stop := errors.New("build canceled by the client")
	cancel(stop)
	if _, err := op.Exec(ctx, []ops.Ref{base, dirRef{e.ctxt}}); !errors.Is(err, stop) {
		t.Errorf("Exec with a canceled context = %v, want %v", err, stop)
	}
}
