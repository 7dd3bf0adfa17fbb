package e2e

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const gitHTTPBackend = "/usr/lib/git-core/git-http-backend"

// privateGitServer serves a one-commit repository at /repo.git over smart
// HTTP (git http-backend), asking for the token the way GitHub does for
// tokens: Basic x-access-token:<token>.
func privateGitServer(t *testing.T, token string, files map[string]string) string {
	t.Helper()
	if _, err := os.Stat(gitHTTPBackend); err != nil {
		t.Skip("git http-backend not installed (apt-get install git)")
	}
	root := t.TempDir()
	work := filepath.Join(root, "work")
	writeFiles(t, work, files)
	git := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+root,
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git(work, "init", "-q", "-b", "main")
	git(work, "add", ".")
	git(work, "commit", "-q", "-m", "one")
	git(root, "clone", "-q", "--bare", work, filepath.Join(root, "repo.git"))
	backend := &cgi.Handler{
		Path:   gitHTTPBackend,
		Env:    []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "HOME=" + root},
		Stderr: io.Discard,
	}
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("x-access-token:"+token))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != want {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/repo.git"
}

// ADD of a private git repository over https takes the token from the
// build's GIT_AUTH_TOKEN secret, as with BuildKit; without it the build
// fails saying so, and the token shows nowhere.
func TestAddPrivateGitRepository(t *testing.T) {
	e := newBldEnv(t)
	const token = "t0ken-that-must-not-leak"
	remote := privateGitServer(t, token, map[string]string{"README": "private hello\n"})
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile": "FROM busybox\nADD " + remote + "#main /src\nRUN cat /src/README > /out.txt\n",
		"token":      token,
	})

	// Without credentials: a clear error.
	r := e.build(dir)
	if r.err == nil {
		t.Fatalf("a build without GIT_AUTH_TOKEN reached the private repository:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, "needs credentials") || !strings.Contains(r.stderr, "GIT_AUTH_TOKEN") {
		t.Errorf("the error does not say which credentials to give:\n%s", r.stderr)
	}

	// With the secret (a file source, as CI systems mount tokens).
	out := t.TempDir()
	r = e.build(dir, "--secret", "id=GIT_AUTH_TOKEN,src="+filepath.Join(dir, "token"), "-o", "type=local,dest="+out)
	if r.err != nil {
		t.Fatalf("build with GIT_AUTH_TOKEN: %v\n%s", r.err, r.stderr)
	}
	got, err := os.ReadFile(filepath.Join(out, "out.txt"))
	if err != nil || string(got) != "private hello\n" {
		t.Errorf("/out.txt = %q, %v", got, err)
	}
	if strings.Contains(r.stderr, token) || bytes.Contains([]byte(e.d.Stderr()), []byte(token)) {
		t.Error("the token shows in the progress or kilnd's log")
	}
	// No .git directory (and so no git config with a header) in the result.
	if _, err := os.Stat(filepath.Join(out, "src", ".git")); !os.IsNotExist(err) {
		t.Errorf("/src/.git exists in the result (%v)", err)
	}
}
