package file_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/graph"
	"github.com/kiln-build/kiln/ops"
	"github.com/kiln-build/kiln/ops/file"
)

// Shared fixtures of the rule tests.
var (
	contextFixture = []fsOp{
		wfile("a.txt", "A", 0o644),
		wfile("b.txt", "B", 0o600),
		wfile("c.md", "C", 0o644),
		wfile("exec.sh", "#!/bin/sh\n", 0o755),
		wfile("owned.txt", "O", 0o644), wchown("owned.txt", 1234, 1234),
		wfile("file1.txt", "1", 0o644), wfile("file2.txt", "2", 0o644), wfile("fileA.txt", "a", 0o644),
		wdir("dir", 0o750),
		wfile("dir/x.txt", "X", 0o644),
		wfile("dir/n.md", "N", 0o644),
		wdir("dir/sub", 0o755),
		wfile("dir/sub/y.txt", "Y", 0o644),
		wfile("dir/sub/n.md", "NN", 0o644),
		wlink("x.txt", "dir/link"),
		wfile("d1/one.txt", "one", 0o644), wfile("d2/two.txt", "two", 0o644),
		wfile("p/q/r.txt", "R", 0o644),
		wlink("a.txt", "lnfile"),
		wlink("dir", "lndir"),
		wfile("rootfs/lib/m.so", "M", 0o644),
	}
	baseFixture = []fsOp{
		wfile("etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n", 0o644),
		wfile("etc/group", "root:x:0:\nstaff:x:50:\napp:x:1000:\n", 0o644),
		wdir("existing", 0o700), wchown("existing", 5, 5),
		wfile("existing/old.txt", "old", 0o644),
		wdir("usr/lib", 0o755), wlink("usr/lib", "lib"),
		wdir("run", 0o755), wlink("/run", "var/run"),
		wfile("file-there", "old", 0o644),
		wfile("t/x.txt/inner", "in", 0o644),
		wlink("/file-there", "link-to-file"),
		wlink("nowhere/deep", "dangling-dest"),
	}
)

func chown(user, group string) func(*graph.CopyAction) {
	return func(a *graph.CopyAction) { a.Chown = &graph.Chown{User: user, Group: group} }
}
func chmod(m string) func(*graph.CopyAction) { return func(a *graph.CopyAction) { a.Chmod = m } }
func parents(a *graph.CopyAction)            { a.Parents = true }
func nofollow(a *graph.CopyAction)           { a.FollowSymlinks = false }
func exclude(p ...string) func(*graph.CopyAction) {
	return func(a *graph.CopyAction) { a.Exclude = p }
}

const (
	rw   = "-rw-r--r--"
	dir  = "drwxr-xr-x"
	root = "0:0"
)

func reg(mode, owner, data string) node { return node{Mode: mode, Owner: owner, Data: data} }
func d(mode, owner string) node         { return node{Mode: mode, Owner: owner} }

func TestCopyRules(t *testing.T) {
	cases := []struct {
		name   string
		action graph.FileAction
		want   map[string]node
		absent []string
	}{
		{"file into directory ending in slash", cp([]string{"a.txt"}, "/dst/"),
			map[string]node{"dst": d(dir, root), "dst/a.txt": reg(rw, root, "A")}, nil},
		{"file to a path creates parents", cp([]string{"a.txt"}, "/x/y/z.txt"),
			map[string]node{"x": d(dir, root), "x/y": d(dir, root), "x/y/z.txt": reg(rw, root, "A")}, nil},
		{"file into existing directory without slash", cp([]string{"a.txt"}, "/existing"),
			map[string]node{"existing": d("drwx------", "5:5"), "existing/a.txt": reg(rw, root, "A"), "existing/old.txt": reg(rw, root, "old")}, nil},
		{"directory copies its contents", cp([]string{"dir"}, "/dst/"),
			map[string]node{"dst/x.txt": reg(rw, root, "X"), "dst/sub": d(dir, root), "dst/sub/y.txt": reg(rw, root, "Y"),
				"dst/link": {Mode: "lrwxrwxrwx", Owner: root, Target: "x.txt"}},
			[]string{"dst/dir"}},
		// BuildKit: the directory a copy creates is 0755 (issue 12 item 2),
		// or the octal --chmod, also the parents it creates.
		{"directory to a new path is a new directory", cp([]string{"dir"}, "/newdir"),
			map[string]node{"newdir": d(dir, root), "newdir/x.txt": reg(rw, root, "X"), "newdir/sub": d(dir, root)}, nil},
		{"directory to a new path with --chmod", cp([]string{"dir"}, "/p/newdir", chmod("0700")),
			map[string]node{"p": d("drwx------", root), "p/newdir": d("drwx------", root), "p/newdir/sub": d("drwx------", root)}, nil},
		{"file into new directories with --chmod", cp([]string{"a.txt"}, "/q/r/", chmod("0640")),
			map[string]node{"q": d("drw-r-----", root), "q/r": d("drw-r-----", root), "q/r/a.txt": reg("-rw-r-----", root, "A")}, nil},
		{"symbolic --chmod leaves new directories 0755", cp([]string{"dir"}, "/sym", chmod("go=")),
			map[string]node{"sym": d(dir, root), "sym/sub": d("drwx------", root)}, nil},
		{"existing destination directory kept", cp([]string{"dir"}, "/existing", chmod("0600")),
			map[string]node{"existing": d("drwx------", "5:5"), "existing/x.txt": reg("-rw-------", root, "X")}, nil},
		{"wildcard matching nothing alone is no error", cp([]string{"nope*"}, "/nothing/"), nil, []string{"nothing"}},
		{"parents with ** at any depth", cp([]string{"./p/**/*.txt", "**/y.txt"}, "/ds/", parents),
			map[string]node{"ds/p/q/r.txt": reg(rw, root, "R"), "ds/dir/sub/y.txt": reg(rw, root, "Y")}, []string{"ds/dir/x.txt"}},
		{"parents with ** from a pivot", cp([]string{"./p/./**/r.txt"}, "/dp/", parents),
			map[string]node{"dp/q/r.txt": reg(rw, root, "R")}, nil},
		{"** without parents is *", cp([]string{"p/**/*.txt"}, "/flat/"),
			map[string]node{"flat/r.txt": reg(rw, root, "R")}, nil},
		{"destination link to a file is written through", cp([]string{"a.txt"}, "/link-to-file"),
			map[string]node{"file-there": reg(rw, root, "A"), "link-to-file": {Mode: "lrwxrwxrwx", Owner: root, Target: "/file-there"}}, nil},
		{"dangling destination link is written through", cp([]string{"a.txt"}, "/dangling-dest"),
			map[string]node{"nowhere/deep": reg(rw, root, "A"), "dangling-dest": {Mode: "lrwxrwxrwx", Owner: root, Target: "nowhere/deep"}}, nil},
		{"dot copies the whole context", cp([]string{"."}, "/ctx/"),
			map[string]node{"ctx/a.txt": reg(rw, root, "A"), "ctx/dir/sub/y.txt": reg(rw, root, "Y"), "ctx": d(dir, root)}, nil},
		{"star wildcard", cp([]string{"*.txt"}, "/dst/"),
			map[string]node{"dst/a.txt": reg(rw, root, "A"), "dst/b.txt": reg("-rw-------", root, "B"), "dst/file1.txt": reg(rw, root, "1")},
			[]string{"dst/c.md", "dst/x.txt"}},
		{"question mark and class wildcards", cp([]string{"file?.txt", "fil[e]?.md"}, "/dst/"),
			map[string]node{"dst/file1.txt": reg(rw, root, "1"), "dst/fileA.txt": reg(rw, root, "a")}, []string{"dst/a.txt"}},
		{"class wildcard", cp([]string{"file[0-9].txt"}, "/dst/"),
			map[string]node{"dst/file1.txt": reg(rw, root, "1"), "dst/file2.txt": reg(rw, root, "2")}, []string{"dst/fileA.txt"}},
		{"wildcard in a directory element", cp([]string{"d*/*.txt"}, "/dst/"),
			map[string]node{"dst/one.txt": reg(rw, root, "one"), "dst/two.txt": reg(rw, root, "two")}, nil},
		{"several sources", cp([]string{"a.txt", "c.md"}, "/dst/"),
			map[string]node{"dst/a.txt": reg(rw, root, "A"), "dst/c.md": reg(rw, root, "C")}, nil},
		{"empty wildcard next to a match", cp([]string{"nope*", "a.txt"}, "/dst/"),
			map[string]node{"dst/a.txt": reg(rw, root, "A")}, nil},
		{"owner reset to root", cp([]string{"owned.txt"}, "/o.txt"),
			map[string]node{"o.txt": reg(rw, root, "O")}, nil},
		{"mode kept", cp([]string{"exec.sh"}, "/bin/"),
			map[string]node{"bin/exec.sh": reg("-rwxr-xr-x", root, "#!/bin/sh\n")}, nil},
		{"chown by name in the destination passwd", cp([]string{"a.txt"}, "/cdir/sub/", chown("app", "")),
			map[string]node{"cdir": d(dir, "1000:1000"), "cdir/sub": d(dir, "1000:1000"), "cdir/sub/a.txt": reg(rw, "1000:1000", "A")}, nil},
		{"chown name:group", cp([]string{"a.txt"}, "/a.txt", chown("app", "staff")),
			map[string]node{"a.txt": reg(rw, "1000:50", "A")}, nil},
		{"chown numeric uid only", cp([]string{"a.txt"}, "/a.txt", chown("1234", "")),
			map[string]node{"a.txt": reg(rw, "1234:1234", "A")}, nil},
		{"chown uid:gid", cp([]string{"dir"}, "/o/", chown("1234", "5")),
			map[string]node{"o": d(dir, "1234:5"), "o/sub": d(dir, "1234:5"), "o/x.txt": reg(rw, "1234:5", "X"),
				"o/link": {Mode: "lrwxrwxrwx", Owner: "1234:5", Target: "x.txt"}}, nil},
		{"chmod octal on files and directories", cp([]string{"dir"}, "/m", chmod("0750")),
			map[string]node{"m": d("drwxr-x---", root), "m/sub": d("drwxr-x---", root), "m/x.txt": reg("-rwxr-x---", root, "X")}, nil},
		{"chmod symbolic", cp([]string{"a.txt"}, "/a.txt", chmod("u+x,go-w")),
			map[string]node{"a.txt": reg("-rwxr--r--", root, "A")}, nil},
		{"chmod a+X", cp([]string{"dir", "exec.sh"}, "/m/", chmod("a+X")),
			map[string]node{"m/sub": d(dir, root), "m/x.txt": reg(rw, root, "X"), "m/exec.sh": reg("-rwxr-xr-x", root, "#!/bin/sh\n")}, nil},
		{"chmod assignment", cp([]string{"exec.sh"}, "/e", chmod("u=rw,g=r,o=r")),
			map[string]node{"e": reg(rw, root, "#!/bin/sh\n")}, nil},
		{"parents keep the path", cp([]string{"p/q/r.txt"}, "/dst/", parents),
			map[string]node{"dst/p": d(dir, root), "dst/p/q": d(dir, root), "dst/p/q/r.txt": reg(rw, root, "R")}, nil},
		{"parents from a /./ marker", cp([]string{"p/./q/r.txt"}, "/dst/", parents),
			map[string]node{"dst/q/r.txt": reg(rw, root, "R")}, []string{"dst/p"}},
		{"parents with wildcards", cp([]string{"d*/*.txt"}, "/dst/", parents),
			map[string]node{"dst/d1/one.txt": reg(rw, root, "one"), "dst/d2/two.txt": reg(rw, root, "two")}, nil},
		{"parents of a directory", cp([]string{"dir/sub"}, "/dst", parents),
			map[string]node{"dst/dir": d("drwxr-x---", root), "dst/dir/sub/y.txt": reg(rw, root, "Y")}, []string{"dst/y.txt"}},
		{"exclude is relative to the source", cp([]string{"dir"}, "/dst/", exclude("*.md")),
			map[string]node{"dst/x.txt": reg(rw, root, "X"), "dst/sub/n.md": reg(rw, root, "NN")}, []string{"dst/n.md"}},
		{"exclude with **", cp([]string{"dir"}, "/dst/", exclude("**/*.md")),
			map[string]node{"dst/sub/y.txt": reg(rw, root, "Y")}, []string{"dst/n.md", "dst/sub/n.md"}},
		{"exclude a directory but re-include a file", cp([]string{"dir"}, "/dst/", exclude("sub", "!sub/y.txt")),
			map[string]node{"dst/sub/y.txt": reg(rw, root, "Y")}, []string{"dst/sub/n.md"}},
		{"exclude a wildcard match", cp([]string{"*.txt"}, "/dst/", exclude("b*", "file*")),
			map[string]node{"dst/a.txt": reg(rw, root, "A")}, []string{"dst/b.txt", "dst/file1.txt"}},
		{"top-level link is followed", cp([]string{"lnfile"}, "/f.txt"),
			map[string]node{"f.txt": reg(rw, root, "A")}, nil},
		{"top-level link to a directory is followed", cp([]string{"lndir"}, "/ld/"),
			map[string]node{"ld/x.txt": reg(rw, root, "X")}, nil},
		{"top-level link kept without follow", cp([]string{"lnfile"}, "/dst/", nofollow),
			map[string]node{"dst/lnfile": {Mode: "lrwxrwxrwx", Owner: root, Target: "a.txt"}}, nil},
		{"file replaces a file", cp([]string{"a.txt"}, "/file-there"),
			map[string]node{"file-there": reg(rw, root, "A")}, nil},
		{"file replaces a directory inside a tree", cp([]string{"dir"}, "/t/"),
			map[string]node{"t/x.txt": reg(rw, root, "X")}, []string{"t/x.txt/inner"}},
		{"destination through a relative link", cp([]string{"a.txt"}, "/lib/a.txt"),
			map[string]node{"usr/lib/a.txt": reg(rw, root, "A"), "lib": {Mode: "lrwxrwxrwx", Owner: root, Target: "usr/lib"}}, nil},
		{"destination through an absolute link", cp([]string{"a.txt"}, "/var/run/a.txt"),
			map[string]node{"run/a.txt": reg(rw, root, "A"), "var/run": {Mode: "lrwxrwxrwx", Owner: root, Target: "/run"}}, nil},
		{"directory tree merges through a link to a directory", cp([]string{"rootfs"}, "/"),
			map[string]node{"usr/lib/m.so": reg(rw, root, "M"), "lib": {Mode: "lrwxrwxrwx", Owner: root, Target: "usr/lib"}}, nil},
	}
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, kind)
			e.context(contextFixture...)
			base := e.base(baseFixture...)
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					e.t = t
					ref := e.mustRun(base, tc.action)
					checkTree(t, e.tree(ref), tc.want, tc.absent)
				})
			}
		})
	}
}

func checkTree(t *testing.T, got, want map[string]node, absent []string) {
	t.Helper()
	for p, w := range want {
		g, ok := got[p]
		if !ok {
			t.Errorf("%s missing; have %v", p, keys(got))
			continue
		}
		if diff := cmp.Diff(w, g); diff != "" {
			t.Errorf("%s (-want +got):\n%s", p, diff)
		}
	}
	for _, p := range absent {
		if _, ok := got[p]; ok {
			t.Errorf("%s present, want absent", p)
		}
	}
}

func TestCopyTimestamp(t *testing.T) {
	e := newEnv(t, kinds[0])
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	e.context(wfile("dir/f", "F", 0o644), wfile("dir/sub/g", "G", 0o644), wmtime("dir/f", old), wmtime("dir/sub", old), wmtime("dir", old))
	base := e.base()

	kept := e.mustRun(base, cp([]string{"dir"}, "/kept/"))
	want := map[string]int64{"kept/f": old.Unix(), "kept/sub": old.Unix()}
	if diff := cmp.Diff(want, e.mtimes(kept, "kept/f", "kept/sub")); diff != "" {
		t.Errorf("mtimes kept (-want +got):\n%s", diff)
	}

	ts := int64(1700000000)
	set := e.mustRun(base, cp([]string{"dir"}, "/a/b/", func(a *graph.CopyAction) { a.Timestamp = &ts }))
	got := e.mtimes(set, "a", "a/b", "a/b/f", "a/b/sub", "a/b/sub/g")
	for p, m := range got {
		if m != ts {
			t.Errorf("%s mtime = %d, want %d", p, m, ts)
		}
	}
}

func TestCopyErrors(t *testing.T) {
	cases := []struct {
		name    string
		action  graph.FileAction
		wantErr string
	}{
		{"missing plain file", cp([]string{"missing.txt"}, "/x"),
			`COPY missing.txt /x: "missing.txt" not found in the build context`},
		{"missing plain file next to a match", cp([]string{"a.txt", "missing.txt"}, "/x/"),
			`"missing.txt" not found in the build context`},
		{"several sources into a file path", cp([]string{"a.txt", "b.txt"}, "/x"),
			"COPY a.txt b.txt /x: When using COPY with more than one source file, the destination must be a directory and end with a /"},
		{"wildcard with several matches into a file path", cp([]string{"*.txt"}, "/x"),
			"destination must be a directory and end with a /"},
		{"unknown chown user", cp([]string{"a.txt"}, "/x", chown("nobody", "")),
			`COPY a.txt /x: --chown=nobody:`},
		{"bad chmod", cp([]string{"a.txt"}, "/x", chmod("u+q")),
			`COPY a.txt /x: --chmod: invalid mode "u+q"`},
		{"bad exclude", cp([]string{"a.txt"}, "/x", exclude("[")),
			`COPY a.txt /x: --exclude=[: syntax error in pattern`},
		{"bad pattern", cp([]string{"a[.txt"}, "/x"), `bad pattern "a[.txt"`},
		{"dangling top-level link", cp([]string{"dangling"}, "/x"),
			`"dangling" is a symbolic link to a missing file in the build context`},
		{"absolute path is inside the context", cp([]string{"/etc/passwd"}, "/x"),
			`"/etc/passwd" not found in the build context`},
		{"ADD names itself", cp([]string{"missing"}, "/x", func(a *graph.CopyAction) { a.Unpack = true }),
			`ADD missing /x: "missing" not found`},
	}
	e := newEnv(t, kinds[1])
	e.context(wfile("a.txt", "A", 0o644), wfile("b.txt", "B", 0o644), wlink("nowhere", "dangling"))
	base := e.base(wfile("etc/passwd", "root:x:0:0::/:/bin/sh\n", 0o644))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			_, err := e.run(base, nil, tc.action)
			if err == nil {
				t.Fatalf("no error, want %q", tc.wantErr)
			}
			t.Logf("error: %v", err)
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q\ndoes not contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestCacheMap(t *testing.T) {
	v := fileVertex(
		cp([]string{"b.txt", "src/*.go", "./a.txt"}, "/x/"),
		cp([]string{"/a.txt", "p/./q"}, "/y/", parents),
		graph.FileAction{Mkdir: &graph.MkdirAction{Path: "/m", Mode: 0o755}},
	)
	op, err := file.New(v, nil)
	if err != nil {
		t.Fatal(err)
	}
	cm, err := op.CacheMap(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := &ops.CacheMap{Digest: v.Op.Digest(), Deps: []ops.Dep{{}, {Selectors: []string{"a.txt", "b.txt", "p/q", "src/*.go"}}}}
	if diff := cmp.Diff(want, cm, cmp.Comparer(func(a, b func()) bool { return true })); diff != "" {
		t.Errorf("CacheMap (-want +got):\n%s", diff)
	}
	if cm.UsesExecutor {
		t.Error("UsesExecutor set for a file op")
	}

	whole, err := file.New(fileVertex(cp([]string{"a.txt", "."}, "/x/")), nil)
	if err != nil {
		t.Fatal(err)
	}
	cm, err = whole.CacheMap(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(cm.Deps) != 2 || cm.Deps[1].Selectors != nil {
		t.Errorf("copy of . : deps = %+v, want input 1 read whole", cm.Deps)
	}
}

// TestCopyFromFilesystem copies from a snapshot (COPY --from): links
// resolve as inside a container with that root, owners and extended
// attributes stay (issue 12 item 1: as in BuildKit).
func TestCopyFromFilesystem(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, kind)
			src := e.base(
				wfile("usr/bin/real", "REAL", 0o755), wchown("usr/bin/real", 1000, 1000),
				wlink("/usr/bin/real", "bin/alias"),
				wlink("../../../../../../usr/bin/real", "etc/up"),
				wlink("/usr", "abs-usr"),
				func(dir string) error {
					return unix.Lsetxattr(filepath.Join(dir, "usr/bin/real"), "user.kiln", []byte("x"), 0)
				},
			)
			from := func(srcs []string, dest string, mod ...func(*graph.CopyAction)) graph.FileAction {
				a := cp(srcs, dest, mod...)
				a.Copy.Input = 0
				return a
			}
			// The file op's base and source are the same snapshot here:
			// the vertex's input 0 is both.
			cases := []struct {
				name   string
				action graph.FileAction
				want   map[string]node
			}{
				{"absolute link followed inside the root", from([]string{"/bin/alias"}, "/out/a"),
					map[string]node{"out/a": reg("-rwxr-xr-x", "1000:1000", "REAL")}},
				{"climbing link stops at the root", from([]string{"/etc/up"}, "/out/u"),
					map[string]node{"out/u": reg("-rwxr-xr-x", "1000:1000", "REAL")}},
				{"path through an absolute link", from([]string{"/abs-usr/bin/real"}, "/out/r"),
					map[string]node{"out/r": reg("-rwxr-xr-x", "1000:1000", "REAL")}},
				{"owners kept in a tree, new destination root's", from([]string{"/usr"}, "/out/tree"),
					map[string]node{"out/tree": d(dir, root), "out/tree/bin/real": reg("-rwxr-xr-x", "1000:1000", "REAL")}},
				{"--chown still wins", from([]string{"/usr/bin/real"}, "/out/c", chown("5", "6")),
					map[string]node{"out/c": reg("-rwxr-xr-x", "5:6", "REAL")}},
				{"links inside a directory stay links", from([]string{"/bin"}, "/out/bin/"),
					map[string]node{"out/bin/alias": {Mode: "lrwxrwxrwx", Owner: root, Target: "/usr/bin/real"}}},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					e.t = t
					ref := e.mustRun(src, tc.action)
					checkTree(t, e.tree(ref), tc.want, nil)
				})
			}
			t.Run("xattrs kept", func(t *testing.T) {
				e.t = t
				ref := e.mustRun(src, from([]string{"/usr/bin/real"}, "/out/x"))
				e.withDir(ref, func(dir string) error {
					v := make([]byte, 8)
					n, err := unix.Lgetxattr(filepath.Join(dir, "out/x"), "user.kiln", v)
					if err != nil || string(v[:n]) != "x" {
						t.Errorf("user.kiln = %q, %v; want \"x\"", v[:max(n, 0)], err)
					}
					return nil
				})
			})
			t.Run("dot-dot names the source filesystem", func(t *testing.T) {
				e.t = t
				_, err := e.run(src, nil, from([]string{"../x"}, "/out/"))
				if err == nil || !strings.Contains(err.Error(), `"../x" is outside the source filesystem`) {
					t.Errorf("error %v, want it to say the path is outside the source filesystem", err)
				}
			})
		})
	}
}
