package git

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/core/errdefs"
)

func TestResolve(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	srv := newGitServer(t, r.root)
	for _, transport := range []struct{ name, remote string }{
		{"file", r.fileURL()},
		{"http", srv.URL + "/repo.git"},
	} {
		t.Run(transport.name, func(t *testing.T) {
			t.Parallel()
			c := newCache(t)
			tests := []struct {
				ref  string
				want Resolved
			}{
				{"", Resolved{Commit: r.c2, Ref: "refs/heads/main"}},
				{"HEAD", Resolved{Commit: r.c2, Ref: "refs/heads/main"}},
				{"main", Resolved{Commit: r.c2, Ref: "refs/heads/main"}},
				{"feature", Resolved{Commit: r.c1, Ref: "refs/heads/feature"}},
				{"light", Resolved{Commit: r.c1, Ref: "refs/tags/light"}},
				{"v1.0", Resolved{Commit: r.c1, Ref: "refs/tags/v1.0"}},
				{"refs/heads/feature", Resolved{Commit: r.c1, Ref: "refs/heads/feature"}},
				{"heads/main", Resolved{Commit: r.c2, Ref: "refs/heads/main"}},
				{r.c1, Resolved{Commit: r.c1}},
				{strings.ToUpper(r.c1), Resolved{Commit: r.c1}},
				{r.c1[:9], Resolved{Commit: r.c1}},
			}
			for _, tt := range tests {
				got, err := c.Resolve(context.Background(), transport.remote, tt.ref, Auth{})
				if err != nil {
					t.Errorf("Resolve(%q): %v", tt.ref, err)
					continue
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("Resolve(%q) (-want +got):\n%s", tt.ref, diff)
				}
			}

			_, err := c.Resolve(context.Background(), transport.remote, "nope", Auth{})
			want := `git source ` + transport.remote + `: ref "nope" not found`
			if err == nil || err.Error() != want || !errdefs.IsNotFound(err) {
				t.Errorf("missing ref: %v, want not-found %q", err, want)
			}
			_, err = c.Resolve(context.Background(), transport.remote, "abcdef12", Auth{})
			if !errdefs.IsNotFound(err) {
				t.Errorf("missing abbreviated commit: %v, want not found", err)
			}
		})
	}
}

// A full commit id resolves without asking the remote.
func TestResolveCommitOffline(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	srv := newGitServer(t, r.root)
	c := newCache(t)
	if _, err := c.Resolve(context.Background(), srv.URL+"/repo.git", r.c1, Auth{}); err != nil {
		t.Fatal(err)
	}
	if n := srv.count(); n != 0 {
		t.Errorf("%d requests to resolve a commit id", n)
	}
}

func TestResolveMissingRepo(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	srv := newGitServer(t, r.root)
	c := newCache(t)
	tests := []struct {
		remote string
		want   []string
	}{
		{srv.URL + "/missing.git", []string{"git ls-remote " + srv.URL + "/missing.git: ", "not found"}},
		{"file://" + r.root + "/missing.git", []string{"git ls-remote file://" + r.root + "/missing.git: ", "does not appear to be a git repository"}},
		{"http://127.0.0.1:1/x.git", []string{"git ls-remote http://127.0.0.1:1/x.git: ", "Failed to connect"}},
	}
	for _, tt := range tests {
		_, err := c.Resolve(context.Background(), tt.remote, "", Auth{})
		if err == nil {
			t.Errorf("Resolve(%s) succeeded", tt.remote)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Resolve(%s) = %q, want it to contain %q", tt.remote, err, w)
			}
		}
		if strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), "fatal:") {
			t.Errorf("error is not brief: %q", err)
		}
	}
	_, err := c.Resolve(context.Background(), srv.URL+"/missing.git", "", Auth{})
	if !errdefs.IsNotFound(err) {
		t.Errorf("missing repository over http: %v is not in the not-found class", err)
	}
}

func TestAuthHeader(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	srv := newGitServer(t, r.root)
	c := newCache(t)
	remote := srv.URL + "/private/repo.git"

	_, err := c.Resolve(context.Background(), remote, "main", Auth{})
	if err == nil || !errors.Is(err, errdefs.ErrUnauthenticated) {
		t.Errorf("without credentials: %v, want an unauthenticated error", err)
	}
	got, err := c.Resolve(context.Background(), remote, "main", Auth{Header: srv.token})
	if err != nil {
		t.Fatal(err)
	}
	if got.Commit != r.c2 {
		t.Errorf("with credentials: %s, want %s", got.Commit, r.c2)
	}
	_, err = c.Resolve(context.Background(), remote, "main", Auth{Header: "Bearer wrong"})
	if err == nil || strings.Contains(err.Error(), "wrong") {
		t.Errorf("wrong credentials: %v", err)
	}
}

// Concurrent resolves of one ref share one ls-remote; one caller giving up
// does not stop it for the others.
func TestResolveShared(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	srv := newGitServer(t, r.root)
	c := newCache(t)
	remote := srv.URL + "/repo.git"
	// One ls-remote over smart HTTP is a fixed number of requests.
	if _, err := c.Resolve(context.Background(), remote, "main", Auth{}); err != nil {
		t.Fatal(err)
	}
	per := srv.count()

	const n = 8
	gate := make(chan struct{})
	srv.setBlock(gate)
	quitter, quit := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		ctx := context.Background()
		if i == 0 {
			ctx = quitter
		}
		wg.Go(func() {
			_, errs[i] = c.Resolve(ctx, remote, "main", Auth{})
		})
	}
	key := remote + "\x00main\x00"
	waiters := func(want int) func() bool {
		return func() bool { return c.resolves.Waiters(key) == want }
	}
	waitFor(t, waiters(n))
	quit()
	waitFor(t, waiters(n-1))
	close(gate)
	wg.Wait()
	if !errors.Is(errs[0], context.Canceled) {
		t.Errorf("the caller that gave up got %v", errs[0])
	}
	for i, err := range errs[1:] {
		if err != nil {
			t.Errorf("caller %d: %v", i+1, err)
		}
	}
	if got := srv.count() - per; got != per {
		t.Errorf("%d concurrent resolves made %d requests, want the %d of one ls-remote", n, got, per)
	}
}

// A cancelled resolve stops git (and its helpers) instead of waiting for
// a server that does not answer.
func TestResolveCancel(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	srv := newGitServer(t, r.root)
	gate := make(chan struct{})
	defer close(gate)
	srv.setBlock(gate)
	c := newCache(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := c.Resolve(ctx, srv.URL+"/repo.git", "main", Auth{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Resolve on a hanging server: %v, want the context's error", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 20s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestNewCacheRemovesStaleLocks(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	dir := t.TempDir()
	c, err := NewCache(dir, WithFileRemotes())
	if err != nil {
		t.Fatal(err)
	}
	repo, unlock, err := c.lockRepo(context.Background(), r.fileURL(), true)
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	for _, f := range []string{"shallow.lock", "refs/heads/x.lock"} {
		if err := writeFile(repo+"/"+f, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := NewCache(dir, WithFileRemotes()); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"shallow.lock", "refs/heads/x.lock"} {
		if exists(repo + "/" + f) {
			t.Errorf("%s not removed", f)
		}
	}
	if !exists(repo + "/HEAD") {
		t.Error("repository removed")
	}
}

func TestPrune(t *testing.T) {
	t.Parallel()
	old, used := newRepo(t), newRepo(t)
	c := newCache(t)
	ctx := context.Background()
	for _, r := range []*testRepo{old, used} {
		if err := c.ensure(ctx, r.fileURL(), Resolved{Commit: r.c2, Ref: "refs/heads/main"}, Auth{}); err != nil {
			t.Fatal(err)
		}
	}
	oldRepo, unlock, err := c.lockRepo(ctx, old.fileURL(), false)
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	past := time.Now().Add(-time.Hour)
	if err := os.Chtimes(oldRepo, past, past); err != nil {
		t.Fatal(err)
	}
	freed, err := c.Prune(ctx, time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if freed == 0 || exists(oldRepo) {
		t.Errorf("Prune freed %d bytes; old repository still there: %v", freed, exists(oldRepo))
	}
	usedRepo, unlock, err := c.lockRepo(ctx, used.fileURL(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if !c.hasCommit(ctx, usedRepo, used.c2) {
		t.Error("Prune removed a repository in use")
	}
}

func TestEnv(t *testing.T) { // not parallel: sets the process environment
	needGit(t)
	t.Setenv("GIT_DIR", "/elsewhere")
	t.Setenv("XDG_CONFIG_HOME", "/elsewhere")
	t.Setenv("GIT_SSH", "/bin/false")
	t.Setenv("HTTPS_PROXY", "http://proxy.example:3128")
	c := newCache(t)
	env, cleanup, err := c.env(runOpts{
		remote: "https://user:pw@git.example.com/r.git?x=1",
		auth:   Auth{Header: "Bearer tok", SSHAuthSock: "/run/agent.sock", KnownHosts: "host ssh-ed25519 AAAA"},
	})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	knownHosts := ""
	if f := strings.Fields(m["GIT_SSH_COMMAND"]); len(f) > 0 {
		knownHosts = strings.Trim(strings.TrimPrefix(f[len(f)-1], "UserKnownHostsFile="), "'")
	}
	if b, err := os.ReadFile(knownHosts); err != nil || string(b) != "host ssh-ed25519 AAAA" {
		t.Errorf("known hosts file %q: %q, %v", knownHosts, b, err)
	}
	cleanup()
	if exists(knownHosts) {
		t.Error("known hosts file left behind")
	}
	want := map[string]string{
		"HOME":                c.home,
		"GIT_CONFIG_NOSYSTEM": "1",
		"GIT_CONFIG_GLOBAL":   "/dev/null",
		"GIT_TERMINAL_PROMPT": "0",
		"GIT_ALLOW_PROTOCOL":  "https:http:ssh:git:file",
		"SSH_AUTH_SOCK":       "/run/agent.sock",
		"HTTPS_PROXY":         "http://proxy.example:3128",
		"GIT_CONFIG_KEY_5":    "http.https://git.example.com/r.git.extraHeader",
		"GIT_CONFIG_VALUE_5":  "Authorization: Bearer tok",
		"GIT_SSH_COMMAND":     "ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile='" + knownHosts + "'",
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s=%q, want %q", k, m[k], v)
		}
	}
	for _, k := range []string{"GIT_DIR", "XDG_CONFIG_HOME", "GIT_SSH"} {
		if _, ok := m[k]; ok {
			t.Errorf("%s leaked from the daemon's environment", k)
		}
	}

	env, cleanup, err = c.env(runOpts{remote: "git@host:r.git", auth: Auth{Header: "Bearer tok"}})
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	for _, kv := range env {
		if strings.Contains(kv, "tok") {
			t.Errorf("an Authorization header for an ssh remote: %s", kv)
		}
		if strings.HasPrefix(kv, "GIT_SSH_COMMAND=") && !strings.Contains(kv, "StrictHostKeyChecking=accept-new -o UserKnownHostsFile='"+c.knownHosts+"'") {
			t.Errorf("without known hosts: %s, want trust on first use", kv)
		}
	}
}
