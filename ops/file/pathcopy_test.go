package file_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/graph"
	"github.com/kiln-build/kiln/ops"
	"github.com/kiln-build/kiln/ops/file"
)

func pcp(src, dest string, mod ...func(*graph.PathCopyAction)) graph.FileAction {
	a := &graph.PathCopyAction{Input: 1, Src: src, Dest: dest}
	for _, m := range mod {
		m(a)
	}
	return graph.FileAction{PathCopy: a}
}

// LLB's copy rules: a directory is copied as itself unless DirContents,
// onto an existing directory it lands inside, owners are kept unless
// Chown, wildcards and patterns filter.
func TestPathCopy(t *testing.T) {
	u32 := func(v uint32) *uint32 { return &v }
	ts := int64(1_600_000_000)
	tests := []struct {
		name    string
		base    []fsOp
		actions []graph.FileAction
		want    map[string]node // entries under the paths listed
		absent  []string
	}{
		{
			name:    "dir itself",
			actions: []graph.FileAction{pcp("/src", "/dst", func(a *graph.PathCopyAction) { a.CreateDestPath = true })},
			want:    map[string]node{"dst/a.txt": {Mode: "-rw-r--r--", Owner: "7:8", Data: "a"}, "dst/sub/b.txt": {Mode: "-rw-------", Owner: "0:0", Data: "b"}},
		},
		{
			name:    "dir into dir",
			base:    []fsOp{wdir("dst", 0o755)},
			actions: []graph.FileAction{pcp("/src", "/dst")},
			want:    map[string]node{"dst/src/a.txt": {Mode: "-rw-r--r--", Owner: "7:8", Data: "a"}},
		},
		{
			name: "contents chown chmod",
			actions: []graph.FileAction{pcp("/src/", "/dst/", func(a *graph.PathCopyAction) {
				a.DirContents, a.CreateDestPath, a.Chown, a.Mode, a.Timestamp = true, true, &graph.Chown{User: "5", Group: "6"}, u32(0o640), &ts
			})},
			want: map[string]node{"dst/a.txt": {Mode: "-rw-r-----", Owner: "5:6", Data: "a"}, "dst/sub": {Mode: "drw-r-----", Owner: "5:6"}},
		},
		{
			name: "wildcards",
			actions: []graph.FileAction{pcp("/src/s*", "/w/", func(a *graph.PathCopyAction) {
				a.Wildcard, a.DirContents, a.CreateDestPath, a.Exclude = true, true, true, []string{"*.log"}
			})},
			want:   map[string]node{"w/b.txt": {Mode: "-rw-------", Owner: "0:0", Data: "b"}},
			absent: []string{"w/c.log", "w/a.txt"},
		},
		{
			name:    "empty wildcard allowed",
			actions: []graph.FileAction{pcp("/nothing*", "/x", func(a *graph.PathCopyAction) { a.Wildcard, a.AllowEmptyWildcard = true, true })},
			absent:  []string{"x"},
		},
		{
			name:    "symlink followed",
			actions: []graph.FileAction{pcp("/alink", "/followed", func(a *graph.PathCopyAction) { a.FollowSymlinks = true })},
			want:    map[string]node{"followed": {Mode: "-rw-r--r--", Owner: "7:8", Data: "a"}},
		},
		{
			name:    "replace",
			base:    []fsOp{wfile("dst/sub", "a file where the source has a directory", 0o644)},
			actions: []graph.FileAction{pcp("/src", "/dst", func(a *graph.PathCopyAction) { a.DirContents, a.ReplaceExisting = true, true })},
			want:    map[string]node{"dst/sub/b.txt": {Mode: "-rw-------", Owner: "0:0", Data: "b"}},
		},
	}
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					e := newEnv(t, kind)
					e.context(wfile("src/a.txt", "a", 0o644), wchown("src/a.txt", 7, 8), wfile("src/sub/b.txt", "b", 0o600), wfile("src/sub/c.log", "c", 0o600), wlink("src/a.txt", "alink"))
					got := e.tree(e.mustRun(e.base(tc.base...), tc.actions...))
					for p, n := range tc.want {
						if d := cmp.Diff(n, got[p]); d != "" {
							t.Errorf("%s (-want +got):\n%s", p, d)
						}
					}
					for _, p := range tc.absent {
						if _, ok := got[p]; ok {
							t.Errorf("%s was copied", p)
						}
					}
				})
			}
		})
	}
}

func TestPathCopyErrors(t *testing.T) {
	e := newEnv(t, kinds[len(kinds)-1])
	e.context(wfile("a", "a", 0o644))
	tests := []struct {
		name   string
		action graph.FileAction
		class  error
		want   string
	}{
		{"missing source", pcp("/nope", "/x"), errdefs.ErrNotFound, "copy /nope /x"},
		{"missing parent without create", pcp("/a", "/no/such/x"), errdefs.ErrNotFound, "parent directory of /no/such/x does not exist"},
		{"empty wildcard", pcp("/z*", "/x", func(a *graph.PathCopyAction) { a.Wildcard = true }), errdefs.ErrNotFound, "/z*: not found"},
		{"required path", pcp("/", "/x", func(a *graph.PathCopyAction) { a.RequiredPaths = []string{"/gone"} }), errdefs.ErrNotFound, `"/gone": not found`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.run(e.base(), nil, tc.action)
			if err == nil || !errors.Is(err, tc.class) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %v containing %q", err, tc.class, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), e.mnt) {
				t.Errorf("error shows a host path: %v", err)
			}
		})
	}
	if _, err := file.New(fileVertex(pcp("/a", "/x", func(a *graph.PathCopyAction) { a.Exclude = []string{"[bad"} })), e.snaps); err == nil || !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("bad pattern: %v", err)
	}
}

// A symlink action can set the link's owner and time.
func TestSymlinkOwnerAndTime(t *testing.T) {
	e := newEnv(t, kinds[0])
	ts := int64(1_500_000_000)
	ref := e.mustRun(e.base(), graph.FileAction{Symlink: &graph.SymlinkAction{Oldpath: "/t", Newpath: "/l", Chown: &graph.Chown{User: "3", Group: "4"}, Timestamp: &ts}})
	if got := e.tree(ref)["l"]; got.Owner != "3:4" || got.Target != "/t" {
		t.Errorf("link = %v", got)
	}
	if m := e.mtimes(ref, "l"); m["l"] != ts {
		t.Errorf("link mtime %d, want %d", m["l"], ts)
	}
}

func diffVertex() *graph.Vertex {
	lower := graph.NewVertex(graph.Op{Source: &graph.SourceOp{Image: &graph.ImageSource{Ref: "lower"}}}, graph.Meta{})
	upper := graph.NewVertex(graph.Op{Source: &graph.SourceOp{Image: &graph.ImageSource{Ref: "upper"}}}, graph.Meta{})
	return graph.NewVertex(graph.Op{Diff: &graph.DiffOp{}}, graph.Meta{}, lower, upper)
}

// A diff holds what upper adds or changes, with its parent directories;
// a removal is refused.
func TestDiff(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, kind)
			old := time.Unix(1_400_000_000, 0)
			lower := e.base(wfile("same", "s", 0o644), wmtime("same", old), wfile("d/changed", "old", 0o644), wfile("gone", "g", 0o644), wmtime("gone", old))
			upper := e.base(wfile("same", "s", 0o644), wmtime("same", old), wfile("d/changed", "new", 0o600), wchown("d/changed", 9, 9), wfile("d/e/added", "a", 0o644), wfile("gone", "g", 0o644), wmtime("gone", old))
			op, err := file.NewDiff(diffVertex(), e.snaps, file.WithMountDir(e.mnt))
			if err != nil {
				t.Fatal(err)
			}
			ref, err := op.Exec(e.ctx, []ops.Ref{lower, upper})
			if err != nil {
				t.Fatal(err)
			}
			got := e.tree(ref)
			if d := cmp.Diff([]string{"d", "d/changed", "d/e", "d/e/added"}, keys(got)); d != "" {
				t.Errorf("entries (-want +got):\n%s", d)
			}
			if n := got["d/changed"]; n.Owner != "9:9" || n.Data != "new" || n.Mode != "-rw-------" {
				t.Errorf("d/changed = %v", n)
			}
			ref.Release(e.ctx)

			removed := e.base(wfile("same", "s", 0o644))
			if _, err := op.Exec(e.ctx, []ops.Ref{lower, removed}); err == nil || !strings.Contains(err.Error(), "removes /") {
				t.Errorf("a removal: %v", err)
			}
		})
	}
}
