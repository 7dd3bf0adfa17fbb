package file_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/graph"
)

func TestActions(t *testing.T) {
	ts := int64(1500000000)
	mkdir := func(p string, mode uint32, parents bool, ch *graph.Chown) graph.FileAction {
		return graph.FileAction{Mkdir: &graph.MkdirAction{Path: p, Mode: mode, MakeParents: parents, Chown: ch}}
	}
	mkfile := func(p string, mode uint32, data string, ch *graph.Chown) graph.FileAction {
		return graph.FileAction{Mkfile: &graph.MkfileAction{Path: p, Mode: mode, Data: []byte(data), Chown: ch}}
	}
	rm := func(p string, notFound, wild bool) graph.FileAction {
		return graph.FileAction{Rm: &graph.RmAction{Path: p, AllowNotFound: notFound, AllowWildcard: wild}}
	}
	symlink := func(oldp, newp string) graph.FileAction {
		return graph.FileAction{Symlink: &graph.SymlinkAction{Oldpath: oldp, Newpath: newp}}
	}
	app := &graph.Chown{User: "app"}
	cases := []struct {
		name    string
		actions []graph.FileAction
		want    map[string]node
		absent  []string
		wantErr string
		errIs   error
	}{
		{"mkdir", []graph.FileAction{mkdir("/d", 0o750, false, nil)},
			map[string]node{"d": d("drwxr-x---", root)}, nil, "", nil},
		{"mkdir -p with owner", []graph.FileAction{mkdir("/a/b/c", 0o700, true, app)},
			map[string]node{"a": d(dir, "1000:1000"), "a/b": d(dir, "1000:1000"), "a/b/c": d("drwx------", "1000:1000")}, nil, "", nil},
		{"mkdir -p of an existing directory", []graph.FileAction{mkdir("/keep", 0o700, true, nil)},
			map[string]node{"keep": d(dir, root), "keep/f": reg(rw, root, "f")}, nil, "", nil},
		{"mkdir of an existing directory", []graph.FileAction{mkdir("/keep", 0o700, false, nil)},
			nil, nil, "mkdir /keep: file exists", errdefs.ErrAlreadyExists},
		{"mkdir without parent", []graph.FileAction{mkdir("/no/such", 0o755, false, nil)},
			nil, nil, "mkdir /no/such: parent directory /no does not exist", errdefs.ErrNotFound},
		{"mkdir timestamp", []graph.FileAction{{Mkdir: &graph.MkdirAction{Path: "/t/u", Mode: 0o755, MakeParents: true, Timestamp: &ts}}},
			map[string]node{"t/u": d(dir, root)}, nil, "", nil},
		{"mkfile heredoc", []graph.FileAction{mkfile("/h/run.sh", 0o755, "echo hi\n", app)},
			map[string]node{"h": d(dir, "1000:1000"), "h/run.sh": reg("-rwxr-xr-x", "1000:1000", "echo hi\n")}, nil, "", nil},
		{"mkfile replaces a file", []graph.FileAction{mkfile("/keep/f", 0o600, "new", nil)},
			map[string]node{"keep/f": reg("-rw-------", root, "new")}, nil, "", nil},
		{"mkfile onto a directory", []graph.FileAction{mkfile("/keep", 0o644, "x", nil)},
			nil, nil, "mkfile /keep: is a directory", errdefs.ErrInvalidArgument},
		{"rm file", []graph.FileAction{rm("/keep/f", false, false)},
			map[string]node{"keep": d(dir, root)}, []string{"keep/f"}, "", nil},
		{"rm directory", []graph.FileAction{rm("/keep", false, false)}, nil, []string{"keep", "keep/f"}, "", nil},
		{"rm link removes the link", []graph.FileAction{rm("/kl", false, false)},
			map[string]node{"keep/f": reg(rw, root, "f")}, []string{"kl"}, "", nil},
		{"rm missing", []graph.FileAction{rm("/nope", false, false)}, nil, nil, "rm /nope: no such file or directory", errdefs.ErrNotFound},
		{"rm missing allowed", []graph.FileAction{rm("/nope", true, false)}, map[string]node{"keep": d(dir, root)}, nil, "", nil},
		{"rm wildcard", []graph.FileAction{rm("/w/*.log", false, true)},
			map[string]node{"w/keep.txt": reg(rw, root, "k")}, []string{"w/a.log", "w/b.log"}, "", nil},
		{"rm of the root", []graph.FileAction{rm("/", true, false)}, nil, nil, "cannot remove the root directory", errdefs.ErrInvalidArgument},
		{"symlink", []graph.FileAction{symlink("../keep/f", "/l/link")},
			map[string]node{"l/link": {Mode: "lrwxrwxrwx", Owner: root, Target: "../keep/f"}}, nil, "", nil},
		{"symlink over an existing entry", []graph.FileAction{symlink("x", "/keep")}, nil, nil, "symlink /keep -> x: file exists", errdefs.ErrAlreadyExists},
		{"actions run in order", []graph.FileAction{mkdir("/o", 0o755, false, nil), mkfile("/o/f", 0o644, "1", nil), rm("/o/f", false, false), mkfile("/o/g", 0o644, "2", nil)},
			map[string]node{"o/g": reg(rw, root, "2")}, []string{"o/f"}, "", nil},
	}
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, kind)
			base := e.base(
				wfile("etc/passwd", "root:x:0:0::/:/bin/sh\napp:x:1000:1000::/:/bin/sh\n", 0o644),
				wfile("keep/f", "f", 0o644), wlink("keep", "kl"),
				wfile("w/a.log", "a", 0o644), wfile("w/b.log", "b", 0o644), wfile("w/keep.txt", "k", 0o644),
			)
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					e.t = t
					ref, err := e.run(base, nil, tc.actions...)
					if tc.wantErr != "" {
						if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
							t.Fatalf("error %v, want %q", err, tc.wantErr)
						}
						if tc.errIs != nil && !errors.Is(err, tc.errIs) {
							t.Errorf("error %v is not in class %v", err, tc.errIs)
						}
						return
					}
					if err != nil {
						t.Fatal(err)
					}
					checkTree(t, e.tree(ref), tc.want, tc.absent)
				})
			}
			t.Run("timestamps", func(t *testing.T) {
				e.t = t
				ref := e.mustRun(base, graph.FileAction{Mkdir: &graph.MkdirAction{Path: "/t/u", Mode: 0o755, MakeParents: true, Timestamp: &ts}},
					graph.FileAction{Mkfile: &graph.MkfileAction{Path: "/t/u/f", Mode: 0o644, Timestamp: &ts}})
				for p, m := range e.mtimes(ref, "t/u/f") {
					if m != ts {
						t.Errorf("%s mtime %d, want %d", p, m, ts)
					}
				}
			})
		})
	}
}
