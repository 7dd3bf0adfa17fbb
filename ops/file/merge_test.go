package file_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/graph"
	"github.com/kiln-build/kiln/ops"
	"github.com/kiln-build/kiln/ops/file"
)

func mergeVertex(n int) *graph.Vertex {
	var ins []*graph.Vertex
	for i := 0; i < n; i++ {
		ins = append(ins, graph.NewVertex(graph.Op{Source: &graph.SourceOp{Image: &graph.ImageSource{Ref: "in" + string(rune('0'+i))}}}, graph.Meta{}))
	}
	return graph.NewVertex(graph.Op{Merge: &graph.MergeOp{}}, graph.Meta{}, ins...)
}

func TestMerge(t *testing.T) {
	old := time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, kind)
			base := e.base(
				wfile("a", "base a", 0o644), wfile("keep", "kept", 0o644),
				wfile("d/base-only", "b", 0o644), wfile("replaced-dir/x", "x", 0o644),
				wlink("/keep", "lnk"),
				wdir("real", 0o755), wlink("/real", "dirlink"),
			)
			top := e.base(
				wfile("a", "top a", 0o600), wchown("a", 1234, 99),
				wfile("d/top-only", "t", 0o640), wchown("d/top-only", 7, 8), wmtime("d/top-only", old),
				wfile("replaced-dir", "now a file", 0o644),
				wlink("a", "lnk"),
				wfile("dirlink/f", "through", 0o644),
				wfile("hl/one", "H", 0o644), func(dir string) error {
					return os.Link(filepath.Join(dir, "hl/one"), filepath.Join(dir, "hl/two"))
				},
				func(dir string) error {
					return unix.Lsetxattr(filepath.Join(dir, "a"), "user.kiln", []byte("v"), 0)
				},
			)
			third := e.base(wfile("d/third", "3", 0o644), wfile("a", "third a", 0o644))

			op, err := file.NewMerge(mergeVertex(3), e.snaps, file.WithMountDir(e.mnt))
			if err != nil {
				t.Fatal(err)
			}
			cm, err := op.CacheMap(e.ctx)
			if err != nil || cm.Digest != mergeVertex(3).Op.Digest() || len(cm.Deps) != 0 {
				t.Fatalf("CacheMap = %+v, %v", cm, err)
			}

			// Two inputs: owners, modes, times, links and xattrs of the top
			// layer win.
			two, err := file.NewMerge(mergeVertex(2), e.snaps, file.WithMountDir(e.mnt))
			if err != nil {
				t.Fatal(err)
			}
			ref, err := two.Exec(e.ctx, []ops.Ref{base, top})
			if err != nil {
				t.Fatal(err)
			}
			defer ref.Release(e.ctx)
			checkTree(t, e.tree(ref), map[string]node{
				"a":            reg("-rw-------", "1234:99", "top a"),
				"keep":         reg(rw, root, "kept"),
				"d/base-only":  reg(rw, root, "b"),
				"d/top-only":   reg("-rw-r-----", "7:8", "t"),
				"replaced-dir": reg(rw, root, "now a file"),
				"lnk":          {Mode: "lrwxrwxrwx", Owner: root, Target: "a"},
				// A directory of an upper layer hides a link of a lower one
				// (issue 12 item 7: COPY --link over a symlink).
				"dirlink":   d(dir, root),
				"dirlink/f": reg(rw, root, "through"),
			}, []string{"replaced-dir/x", "real/f"})
			if m := e.mtimes(ref, "d/top-only")["d/top-only"]; m != old.Unix() {
				t.Errorf("d/top-only mtime %d, want %d", m, old.Unix())
			}
			e.withDir(ref, func(dir string) error {
				one, err := os.Stat(filepath.Join(dir, "hl/one"))
				if err != nil {
					return err
				}
				two, err := os.Stat(filepath.Join(dir, "hl/two"))
				if err != nil {
					return err
				}
				if !os.SameFile(one, two) {
					t.Error("hard link hl/one = hl/two not kept")
				}
				v := make([]byte, 16)
				n, err := unix.Lgetxattr(filepath.Join(dir, "a"), "user.kiln", v)
				if err != nil || string(v[:max(n, 0)]) != "v" {
					t.Errorf("xattr user.kiln of a = %q, %v; want \"v\"", v[:max(n, 0)], err)
				}
				return nil
			})

			// Three inputs stack in order.
			ref3, err := op.Exec(e.ctx, []ops.Ref{base, top, third})
			if err != nil {
				t.Fatal(err)
			}
			defer ref3.Release(e.ctx)
			checkTree(t, e.tree(ref3), map[string]node{
				"a": reg(rw, root, "third a"), "d/third": reg(rw, root, "3"), "d/top-only": reg("-rw-r-----", "7:8", "t"),
			}, nil)

			// A build context as the first input is copied too.
			e.context(wfile("ctx.txt", "C", 0o644))
			ref4, err := two.Exec(e.ctx, []ops.Ref{dirRef{e.ctxt}, third})
			if err != nil {
				t.Fatal(err)
			}
			defer ref4.Release(e.ctx)
			checkTree(t, e.tree(ref4), map[string]node{"ctx.txt": reg(rw, root, "C"), "d/third": reg(rw, root, "3")}, nil)
		})
	}
}
