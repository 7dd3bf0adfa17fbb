package git

import (
	"context"
	"errors"
	"github.com/kiln-build/kiln/internal/snaptest"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/graph"
	"github.com/kiln-build/kiln/ops"
	"github.com/kiln-build/kiln/session"
	"github.com/kiln-build/kiln/snapshot"
)

func TestNewOpInvalid(t *testing.T) {
	t.Parallel()
	needGit(t)
	strict, err := NewCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		src   graph.GitSource
		want  string
		class error
	}{
		{"file remote", graph.GitSource{Remote: "file:///etc"}, "git source file:///etc: file:// remotes are not allowed", errdefs.ErrPermissionDenied},
		{"local path", graph.GitSource{Remote: "/var/lib/kiln"}, "not a remote URL", errdefs.ErrInvalidArgument},
		{"ext helper", graph.GitSource{Remote: "ext::sh -c touch% /tmp/pwned"}, "remote helpers", errdefs.ErrInvalidArgument},
		{"option", graph.GitSource{Remote: "-oProxyCommand=x"}, "invalid remote", errdefs.ErrInvalidArgument},
		{"scheme", graph.GitSource{Remote: "ftp://h/r.git"}, `unsupported transport "ftp"`, errdefs.ErrInvalidArgument},
		{"newline", graph.GitSource{Remote: "https://h/r.git\n"}, "invalid remote", errdefs.ErrInvalidArgument},
		{"ssh option host", graph.GitSource{Remote: "ssh://-oProxyCommand=x/r.git"}, "invalid host", errdefs.ErrInvalidArgument},
		{"scp option host", graph.GitSource{Remote: "git@-oProxyCommand=x:r.git"}, "invalid host", errdefs.ErrInvalidArgument},
		{"ref option", graph.GitSource{Remote: "https://h/r.git", Ref: "--upload-pack=x"}, `invalid ref "--upload-pack=x"`, errdefs.ErrInvalidArgument},
		{"ref range", graph.GitSource{Remote: "https://h/r.git", Ref: "a..b"}, `invalid ref`, errdefs.ErrInvalidArgument},
		{"ref revision syntax", graph.GitSource{Remote: "https://h/r.git", Ref: "main~1"}, `invalid ref`, errdefs.ErrInvalidArgument},
		{"subdir escape", graph.GitSource{Remote: "https://h/r.git", Subdir: "../x"}, "leaves the repository", errdefs.ErrInvalidArgument},
		{"password redacted", graph.GitSource{Remote: "ftp://u:hunter2@h/r.git"}, "ftp://u:xxxxx@h/r.git", errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := tt.src
			_, err := NewOp(&src, digest.FromString("x"), nopSnapshots{}, strict)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, tt.class) {
				t.Errorf("NewOp(%+v) = %v, want %q in class %v", tt.src, err, tt.want, tt.class)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
	for _, remote := range []string{"https://github.com/moby/buildkit.git", "git@github.com:moby/buildkit.git",
		"ssh://git@host:2222/r.git", "git://host/r.git", "http://127.0.0.1:5000/r"} {
		src := graph.GitSource{Remote: remote, Ref: "v1.0", Subdir: "/docs/"}
		if _, err := NewOp(&src, "", nopSnapshots{}, strict); err != nil {
			t.Errorf("NewOp(%s): %v", remote, err)
		}
	}
}

func TestCacheMapKey(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	srv := newGitServer(t, r.root)
	c := newCache(t)
	ctx := context.Background()
	key := func(src graph.GitSource) digest.Digest {
		t.Helper()
		cm, err := newOp(t, src, nil, c).CacheMap(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return cm.Digest
	}
	remote := srv.URL + "/repo.git"
	main1 := key(graph.GitSource{Remote: remote, Ref: "main"})
	pinned := key(graph.GitSource{Remote: remote, Ref: r.c2})
	if again := key(graph.GitSource{Remote: remote, Ref: "main"}); again != main1 {
		t.Error("the key of an unchanged branch changed")
	}
	r.commit(t, "three")
	if main2 := key(graph.GitSource{Remote: remote, Ref: "main"}); main2 == main1 {
		t.Error("a new commit on the branch did not change the key")
	}
	if p := key(graph.GitSource{Remote: remote, Ref: r.c2}); p != pinned {
		t.Error("the key of a pinned commit changed")
	}
	if f := key(graph.GitSource{Remote: remote, Ref: "feature"}); f == main1 {
		t.Error("two commits, one key")
	}
}

// tree lists a result: path → "dir", "link -> target" or "mode content".
func tree(t *testing.T, dir string, skipGit bool) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == ".git" && skipGit {
			return filepath.SkipDir
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			m[rel] = "dir " + info.Mode().Perm().String()
			if rel == ".git" {
				return filepath.SkipDir
			}
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			m[rel] = "link -> " + target
		default:
			b, _ := os.ReadFile(p)
			m[rel] = info.Mode().Perm().String() + " " + string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// inResult calls fn with a read-only view of ref's filesystem.
func inResult(t *testing.T, ref ops.Ref, fn func(dir string)) {
	t.Helper()
	sr, ok := ref.(*snaptest.Ref)
	if !ok {
		t.Fatalf("result is a %T", ref)
	}
	if err := sr.WithDir(func(dir string) error { fn(dir); return nil }); err != nil {
		t.Fatal(err)
	}
}

func execOp(t *testing.T, o *Op) ops.Ref {
	t.Helper()
	if _, err := o.CacheMap(context.Background()); err != nil {
		t.Fatal(err)
	}
	ref, err := o.Exec(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func TestExecCheckout(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	srv := newGitServer(t, r.root)
	full := func(readme string) map[string]string {
		return map[string]string{
			"README": "-rw-r--r-- " + readme, "bin": "dir -rwxr-xr-x", "bin/tool": "-rwxr-xr-x #!/bin/sh\n",
			"link": "link -> README", "sub": "dir -rwxr-xr-x", "sub/dir": "dir -rwxr-xr-x", "sub/dir/file.txt": "-rw-r--r-- deep",
		}
	}
	for _, kind := range []string{snapshot.KindOverlay, snapshot.KindNative} {
		t.Run(kind, func(t *testing.T) {
			snaps := snaptest.New(t, kind)
			c := newCache(t)
			tests := []struct {
				name string
				src  graph.GitSource
				want map[string]string
			}{
				{"default branch over http", graph.GitSource{Remote: srv.URL + "/repo.git"}, full("two")},
				{"tag over file", graph.GitSource{Remote: r.fileURL(), Ref: "v1.0"}, full("one")},
				{"commit", graph.GitSource{Remote: srv.URL + "/repo.git", Ref: r.c1}, full("one")},
				{"abbreviated commit", graph.GitSource{Remote: r.fileURL(), Ref: r.c1[:10]}, full("one")},
				{"subdir", graph.GitSource{Remote: srv.URL + "/repo.git", Ref: "feature", Subdir: "sub"},
					map[string]string{"dir": "dir -rwxr-xr-x", "dir/file.txt": "-rw-r--r-- deep"}},
				{"subdir with keep-git-dir has no .git", graph.GitSource{Remote: srv.URL + "/repo.git", Subdir: "/sub/dir/", KeepGitDir: true},
					map[string]string{"file.txt": "-rw-r--r-- deep"}},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					ref := execOp(t, newOp(t, tt.src, snaps, c))
					inResult(t, ref, func(dir string) {
						if diff := cmp.Diff(tt.want, tree(t, dir, false)); diff != "" {
							t.Errorf("result (-want +got):\n%s", diff)
						}
					})
				})
			}
		})
	}
}

func TestExecKeepGitDir(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	srv := newGitServer(t, r.root)
	snaps := snaptest.New(t, snapshot.KindOverlay)
	c := newCache(t)
	remote := srv.URL + "/repo.git"
	tests := []struct {
		ref       string
		head      string
		symbolic  string // branch HEAD is on, "" for detached
		describe  string
		upstream  string
		readmeTxt string
	}{
		{"", r.c2, "main", "", "origin/main", "two"},
		{"feature", r.c1, "feature", "", "origin/feature", "one"},
		{"v1.0", r.c1, "", "v1.0", "", "one"},
		{r.c2, r.c2, "", "", "", "two"},
	}
	for _, tt := range tests {
		t.Run("ref="+tt.ref, func(t *testing.T) {
			ref := execOp(t, newOp(t, graph.GitSource{Remote: remote, Ref: tt.ref, KeepGitDir: true}, snaps, c))
			inResult(t, ref, func(dir string) {
				if got := gitIn(t, dir, "rev-parse", "HEAD"); got != tt.head {
					t.Errorf("HEAD = %s, want %s", got, tt.head)
				}
				if got := gitOut(dir, "symbolic-ref", "--short", "-q", "HEAD"); got != tt.symbolic {
					t.Errorf("HEAD is on %q, want %q", got, tt.symbolic)
				}
				if tt.describe != "" {
					if got := gitIn(t, dir, "describe", "--tags"); got != tt.describe {
						t.Errorf("describe = %q, want %q", got, tt.describe)
					}
				}
				if tt.upstream != "" {
					if got := gitIn(t, dir, "rev-parse", "--abbrev-ref", "@{upstream}"); got != tt.upstream {
						t.Errorf("upstream = %q, want %q", got, tt.upstream)
					}
				}
				if got := gitIn(t, dir, "remote", "get-url", "origin"); got != remote {
					t.Errorf("origin = %q, want %q", got, remote)
				}
				if got := gitIn(t, dir, "status", "--porcelain"); got != "" {
					t.Errorf("work tree not clean:\n%s", got)
				}
				if got := gitIn(t, dir, "for-each-ref", "--format=%(refname)", "refs/kiln/"); got != "" {
					t.Errorf("cache refs leaked into the result: %s", got)
				}
				if b, _ := os.ReadFile(filepath.Join(dir, "README")); string(b) != tt.readmeTxt {
					t.Errorf("README = %q, want %q", b, tt.readmeTxt)
				}
			})
		})
	}
}

func TestExecCredentialsStayOut(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	srv := newGitServer(t, r.root)
	snaps := snaptest.New(t, snapshot.KindOverlay)
	c := newCache(t)
	remote := strings.Replace(srv.URL, "http://", "http://user:pa55word@", 1) + "/private/repo.git"
	ref := execOp(t, newOp(t, graph.GitSource{Remote: remote, KeepGitDir: true}, snaps, c, WithAuth(Auth{Header: srv.token})))
	inResult(t, ref, func(dir string) {
		b, err := os.ReadFile(filepath.Join(dir, ".git", "config"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "pa55word") || strings.Contains(string(b), "s3cret") {
			t.Errorf(".git/config holds credentials:\n%s", b)
		}
	})
}

func TestExecErrors(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	snaps := snaptest.New(t, snapshot.KindOverlay)
	c := newCache(t)
	tests := []struct {
		src   graph.GitSource
		want  string
		class error
	}{
		{graph.GitSource{Remote: r.fileURL(), Subdir: "nope"}, `subdirectory "nope" not found at commit ` + r.c2, errdefs.ErrNotFound},
		{graph.GitSource{Remote: r.fileURL(), Subdir: "README"}, `"README" is not a directory`, errdefs.ErrInvalidArgument},
		{graph.GitSource{Remote: r.fileURL(), Ref: strings.Repeat("ab", 20)}, "git fetch file://", errdefs.ErrNotFound},
	}
	for _, tt := range tests {
		o := newOp(t, tt.src, snaps, c)
		_, err := o.Exec(context.Background(), nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, tt.class) {
			t.Errorf("Exec(%+v) = %v, want %q in class %v", tt.src, err, tt.want, tt.class)
		}
	}
	o := newOp(t, graph.GitSource{Remote: r.fileURL()}, snaps, c)
	if _, err := o.Exec(context.Background(), make([]ops.Ref, 1)); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Exec with an input: %v", err)
	}
}

// Builds checking out the same commit at once share one fetch; a second
// build of a fetched commit asks the remote nothing.
func TestExecShared(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	srv := newGitServer(t, r.root)
	snaps := snaptest.New(t, snapshot.KindOverlay)
	c := newCache(t)
	src := graph.GitSource{Remote: srv.URL + "/repo.git", Ref: r.c2}
	execOp(t, newOp(t, src, snaps, newCache(t))).Release(context.Background())
	perFetch := srv.count()

	const n = 6
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			o := newOp(t, src, snaps, c)
			ref, err := o.Exec(context.Background(), nil)
			if err == nil {
				inResult(t, ref, func(dir string) {
					if b, _ := os.ReadFile(filepath.Join(dir, "README")); string(b) != "two" {
						errs[i] = errors.New("README = " + string(b))
					}
				})
			}
			if errs[i] == nil {
				errs[i] = err
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := srv.count() - perFetch; got != perFetch {
		t.Errorf("%d concurrent builds made %d requests, want the %d of one fetch", n, got, perFetch)
	}
	before := srv.count()
	execOp(t, newOp(t, src, snaps, c)).Release(context.Background())
	if srv.count() != before {
		t.Errorf("a fetched commit was fetched again (%d requests)", srv.count()-before)
	}
	names, _ := os.ReadDir(filepath.Join(c.dir, "repos"))
	var repos []string
	for _, e := range names {
		repos = append(repos, e.Name())
	}
	sort.Strings(repos)
	if len(repos) != 1 {
		t.Errorf("repositories in the cache: %v, want one", repos)
	}
}

func TestCacheNewOp(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	c := newCache(t)
	// The shape of worker.GitSource (the worker imports this package).
	var src interface {
		NewOp(v *graph.Vertex, snaps ops.Snapshots, sess session.Session) (ops.Op, error)
	} = c
	v := graph.NewVertex(graph.Op{Source: &graph.SourceOp{Git: &graph.GitSource{Remote: r.fileURL(), Ref: "feature"}}}, graph.Meta{})
	o, err := src.NewOp(v, nopSnapshots{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := o.(*Op).opDigest; got != v.Op.Digest() {
		t.Errorf("op digest %s, want the vertex op's %s", got, v.Op.Digest())
	}
	if _, err := o.CacheMap(context.Background()); err != nil {
		t.Error(err)
	}
	bad := graph.NewVertex(graph.Op{Source: &graph.SourceOp{HTTP: &graph.HTTPSource{URL: "http://h/x"}}}, graph.Meta{})
	if o, err := src.NewOp(bad, nopSnapshots{}, nil); !errdefs.IsInvalidArgument(err) || o != nil {
		t.Errorf("NewOp of an http vertex = %v, %v", o, err)
	}
}
