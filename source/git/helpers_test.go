package git

import (
	"context"
	"io"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/graph"
	"github.com/kiln-build/kiln/ops"
)

const httpBackend = "/usr/lib/git-core/git-http-backend"

// gitEnv is the environment of the git commands tests run themselves.
func gitEnv(home string) []string {
	return []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + home, "GIT_CONFIG_NOSYSTEM=1", "LC_ALL=C",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com",
		"GIT_AUTHOR_DATE=2020-01-01T00:00:00Z", "GIT_COMMITTER_DATE=2020-01-01T00:00:00Z",
	}
}

func needGit(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed (Debian package git)")
	}
}

// gitIn runs git in dir and returns its trimmed stdout.
func gitIn(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = gitEnv(dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// testRepo is a repository made by the test: a work tree that commits are
// made in and a bare repository (root/repo.git) they are pushed to.
type testRepo struct {
	root, work, bare string
	c1, c2           string // the first and second commit on main
}

// newRepo makes a repository with:
//
//	c1: README "one", bin/tool (executable), sub/dir/file.txt, link -> README
//	    branch feature, lightweight tag light, annotated tag v1.0
//	c2: README "two" (main)
func newRepo(t *testing.T) *testRepo {
	t.Helper()
	needGit(t)
	root := t.TempDir()
	r := &testRepo{root: root, work: filepath.Join(root, "work"), bare: filepath.Join(root, "repo.git")}
	gitIn(t, root, "init", "-q", "-b", "main", r.work)
	write := func(name, data string, mode os.FileMode) {
		p := filepath.Join(r.work, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("README", "one", 0o644)
	write("bin/tool", "#!/bin/sh\n", 0o755)
	write("sub/dir/file.txt", "deep", 0o644)
	if err := os.Symlink("README", filepath.Join(r.work, "link")); err != nil {
		t.Fatal(err)
	}
	gitIn(t, r.work, "add", "-A")
	gitIn(t, r.work, "commit", "-q", "-m", "one")
	r.c1 = gitIn(t, r.work, "rev-parse", "HEAD")
	gitIn(t, r.work, "branch", "feature")
	gitIn(t, r.work, "tag", "light")
	gitIn(t, r.work, "tag", "-a", "-m", "release", "v1.0")
	write("README", "two", 0o644)
	gitIn(t, r.work, "commit", "-q", "-am", "two")
	r.c2 = gitIn(t, r.work, "rev-parse", "HEAD")
	gitIn(t, root, "init", "-q", "--bare", "-b", "main", r.bare)
	gitIn(t, r.work, "push", "-q", "--tags", r.bare, "main", "feature")
	return r
}

// commit adds a commit changing README on main and pushes it.
func (r *testRepo) commit(t *testing.T, readme string) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(r.work, "README"), []byte(readme), 0o644); err != nil {
		t.Fatal(err)
	}
	gitIn(t, r.work, "commit", "-q", "-am", readme)
	gitIn(t, r.work, "push", "-q", r.bare, "main")
	return gitIn(t, r.work, "rev-parse", "HEAD")
}

func (r *testRepo) fileURL() string { return "file://" + r.bare }

// gitServer serves the repositories under a directory with git
// http-backend (smart HTTP, protocol v2) and counts requests. Paths under
// /private/ need the Authorization header token.
type gitServer struct {
	*httptest.Server
	token string

	mu       sync.Mutex
	requests int
	block    chan struct{} // if set, requests wait for it to close
}

func (s *gitServer) setBlock(ch chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.block = ch
}

func newGitServer(t *testing.T, projectRoot string) *gitServer {
	t.Helper()
	if _, err := os.Stat(httpBackend); err != nil {
		t.Skip("git http-backend not installed")
	}
	s := &gitServer{token: "Bearer s3cret-t0ken"}
	backend := &cgi.Handler{
		Path:   httpBackend,
		Env:    []string{"GIT_PROJECT_ROOT=" + projectRoot, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "HOME=" + projectRoot},
		Stderr: io.Discard,
	}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests++
		block := s.block
		s.mu.Unlock()
		if block != nil {
			select {
			case <-block:
			case <-r.Context().Done():
				return
			}
		}
		if rest, ok := strings.CutPrefix(r.URL.Path, "/private"); ok {
			if r.Header.Get("Authorization") != s.token {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			r.URL.Path = rest
		}
		backend.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *gitServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

func newCache(t *testing.T, opts ...CacheOption) *Cache {
	t.Helper()
	c, err := NewCache(t.TempDir(), append([]CacheOption{WithFileRemotes()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// nopSnapshots is an ops.Snapshots for tests that never Exec.
type nopSnapshots struct{}

func (nopSnapshots) New(context.Context, ops.Ref, string) (ops.Active, error) {
	panic("unexpected New")
}

func newOp(t *testing.T, src graph.GitSource, snaps ops.Snapshots, c *Cache, opts ...OpOption) *Op {
	t.Helper()
	if snaps == nil {
		snaps = nopSnapshots{}
	}
	dgst := digest.FromString(src.Remote + "#" + src.Ref + ":" + src.Subdir + map[bool]string{true: "+git"}[src.KeepGitDir])
	o, err := NewOp(&src, dgst, snaps, c, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func writeFile(p, data string) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(data), 0o644)
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// gitOut runs git in dir and returns its trimmed stdout, "" on failure.
func gitOut(dir string, args ...string) string {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = gitEnv(dir)
	out, _ := cmd.Output()
	return strings.TrimSpace(string(out))
}
