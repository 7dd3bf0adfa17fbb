package file_test

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/graph"
)

// hostSentinel makes a host directory holding a secret and returns a
// check that it is unchanged.
func hostSentinel(t *testing.T) (string, func()) {
	t.Helper()
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "secret.txt"), []byte("HOST SECRET"), 0o600); err != nil {
		t.Fatal(err)
	}
	return host, func() {
		t.Helper()
		entries, err := os.ReadDir(host)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 || entries[0].Name() != "secret.txt" {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Errorf("host directory changed: %v", names)
		}
		b, err := os.ReadFile(filepath.Join(host, "secret.txt"))
		if err != nil || string(b) != "HOST SECRET" {
			t.Errorf("host secret changed: %q, %v", b, err)
		}
	}
}

// noSecret fails if any file of the result holds the host's secret.
func noSecret(t *testing.T, tree map[string]node) {
	t.Helper()
	for p, n := range tree {
		if strings.Contains(n.Data, "HOST SECRET") {
			t.Errorf("%s holds the host's secret", p)
		}
	}
}

func TestSourceEscapes(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, kind)
			host, unchanged := hostSentinel(t)
			e.context(
				wfile("sub/f.txt", "F", 0o644),
				wlink(host, "hostdir"),
				wlink(filepath.Join(host, "secret.txt"), "hostfile"),
				wlink("../../../../../../../../", "up"),
				wlink("../..", "deep/link"),
				wlink("sub", "inner"),
			)
			base := e.base()
			cases := []struct {
				name    string
				src     string
				follow  bool
				wantErr string
			}{
				{"dot-dot", "../x", true, `"../x" is outside the build context`},
				{"absolute dot-dot", "/../x", true, `"/../x" is outside the build context`},
				{"dot-dot after a name", "sub/../../x", true, `"sub/../../x" is outside the build context`},
				{"through an absolute link", "hostdir/secret.txt", true, `"hostdir/secret.txt" is outside the build context`},
				{"followed absolute link", "hostfile", true, `"hostfile" is outside the build context`},
				{"followed link to a directory", "hostdir", true, `"hostdir" is outside the build context`},
				{"through a climbing link", "up/etc/passwd", true, `"up/etc/passwd" is outside the build context`},
				{"through a nested climbing link", "deep/link/x", true, `"deep/link/x" is outside the build context`},
				{"wildcard through a link", "host*/secret.txt", true, `"host*/secret.txt" is outside the build context`},
				{"wildcard matching a followed link", "hostf*", true, `"hostfile" is outside the build context`},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					e.t = t
					a := cp([]string{tc.src}, "/out/")
					a.Copy.FollowSymlinks = tc.follow
					_, err := e.run(base, nil, a)
					if err == nil {
						t.Fatalf("no error, want %q", tc.wantErr)
					}
					if !strings.Contains(err.Error(), tc.wantErr) || !errdefs.IsInvalidArgument(err) {
						t.Errorf("error %q (invalid argument: %v), want it to contain %q", err, errdefs.IsInvalidArgument(err), tc.wantErr)
					}
					unchanged()
				})
			}
			t.Run("links inside are copied, not followed", func(t *testing.T) {
				e.t = t
				ref := e.mustRun(base, cp([]string{"."}, "/all/"))
				got := e.tree(ref)
				noSecret(t, got)
				checkTree(t, got, map[string]node{
					"all/hostdir":   {Mode: "lrwxrwxrwx", Owner: root, Target: host},
					"all/up":        {Mode: "lrwxrwxrwx", Owner: root, Target: "../../../../../../../../"},
					"all/sub/f.txt": reg(rw, root, "F"),
				}, nil)
			})
			t.Run("unfollowed top-level link is a link", func(t *testing.T) {
				e.t = t
				a := cp([]string{"hostfile"}, "/out/")
				a.Copy.FollowSymlinks = false
				got := e.tree(e.mustRun(base, a))
				noSecret(t, got)
				checkTree(t, got, map[string]node{"out/hostfile": {Mode: "lrwxrwxrwx", Owner: root, Target: filepath.Join(host, "secret.txt")}}, nil)
			})
			t.Run("links inside the context are followed", func(t *testing.T) {
				e.t = t
				got := e.tree(e.mustRun(base, cp([]string{"inner/f.txt"}, "/out/")))
				checkTree(t, got, map[string]node{"out/f.txt": reg(rw, root, "F")}, nil)
			})
			unchanged()
		})
	}
}

func TestDestinationEscapes(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, kind)
			host, unchanged := hostSentinel(t)
			e.context(wfile("a.txt", "A", 0o644), wfile("dir/b.txt", "B", 0o644),
				wlink(host, "tree/evil"), wfile("tree/evil2/pwned-by-tree", "T", 0o644))
			base := e.base(
				wlink(host, "escape"),
				wlink("../../../../../../../..", "up"),
				wlink("/", "rootlink"),
				wdir("tree", 0o755), wlink(host, "tree/evil2"),
			)
			inRoot := strings.TrimPrefix(host, "/")
			cases := []struct {
				name   string
				action graph.FileAction
				want   string // a path that must exist in the result
			}{
				{"copy through an absolute link", cp([]string{"a.txt"}, "/escape/pwned"), inRoot + "/pwned"},
				{"copy into a link to a host directory", cp([]string{"a.txt"}, "/escape/"), inRoot + "/a.txt"},
				{"copy through a climbing link", cp([]string{"dir"}, "/up/x/"), "x/b.txt"},
				{"copy through a link to /", cp([]string{"a.txt"}, "/rootlink/tmp/pwned"), "tmp/pwned"},
				// The link's target is not a directory of the root: the link is
				// replaced by the copied directory.
				{"tree meets a link to a host directory", cp([]string{"tree"}, "/tree"), "tree/evil2/pwned-by-tree"},
				{"mkdir through a link", graph.FileAction{Mkdir: &graph.MkdirAction{Path: "/escape/d", Mode: 0o755, MakeParents: true}}, inRoot + "/d"},
				{"mkfile through a link", graph.FileAction{Mkfile: &graph.MkfileAction{Path: "/escape/f", Mode: 0o644, Data: []byte("x")}}, inRoot + "/f"},
				{"symlink through a link", graph.FileAction{Symlink: &graph.SymlinkAction{Oldpath: "/etc/passwd", Newpath: "/escape/l"}}, inRoot + "/l"},
				{"rm through a link", graph.FileAction{Rm: &graph.RmAction{Path: "/escape/secret.txt", AllowNotFound: true}}, "escape"},
				{"rm wildcard through a link", graph.FileAction{Rm: &graph.RmAction{Path: "/escape/*", AllowWildcard: true, AllowNotFound: true}}, "escape"},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					e.t = t
					ref := e.mustRun(base, tc.action)
					got := e.tree(ref)
					if _, ok := got[tc.want]; !ok {
						t.Errorf("%s missing from the result; have %v", tc.want, keys(got))
					}
					unchanged()
				})
			}
			unchanged()
		})
	}
}

func TestArchiveEscapes(t *testing.T) {
	e := newEnv(t, kinds[0])
	host, unchanged := hostSentinel(t)
	base := e.base()
	cases := []struct {
		name    string
		entries []tarEntry
		wantErr string
		want    string
	}{
		{"dot-dot name", []tarEntry{{name: "../../../../evil", body: "x"}}, `archive entry "../../../../evil" leaves the destination`, ""},
		{"hard link out", []tarEntry{{name: "h", link: "../../../etc/passwd", typ: tar.TypeLink}}, `hard link to "../../../etc/passwd" leaves the destination`, ""},
		{"write through an absolute link", []tarEntry{
			{name: "s", link: host, typ: tar.TypeSymlink},
			{name: "s/pwned", body: "x"},
		}, "", "out" + host + "/pwned"},
		{"absolute name", []tarEntry{{name: host + "/abs", body: "x"}}, "", "out" + host + "/abs"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			name := strings.ReplaceAll(tc.name, " ", "-") + ".tar"
			e.context(rawFile(name, makeTar(t, tc.entries...)))
			a := cp([]string{name}, "/out/")
			a.Copy.Unpack = true
			ref, err := e.run(base, nil, a)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %v, want %q", err, tc.wantErr)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				got := e.tree(ref)
				if _, ok := got[tc.want]; !ok {
					t.Errorf("%s missing; have %v", tc.want, keys(got))
				}
			}
			unchanged()
		})
	}
}

// tarEntry is one entry of a test archive.
type tarEntry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func makeTar(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, en := range entries {
		h := &tar.Header{Name: en.name, Typeflag: en.typ, Linkname: en.link, Mode: en.mode}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(en.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(en.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func rawFile(p string, data []byte) fsOp {
	return func(dir string) error { return os.WriteFile(filepath.Join(dir, p), data, 0o644) }
}
