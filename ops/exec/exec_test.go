package exec_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/core/sandbox"
	"github.com/kiln-build/kiln/executor"
	"github.com/kiln-build/kiln/executor/runc"
	"github.com/kiln-build/kiln/graph"
	"github.com/kiln-build/kiln/internal/testroot"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/ops"
	"github.com/kiln-build/kiln/ops/exec"
	"github.com/kiln-build/kiln/progress"
	"github.com/kiln-build/kiln/session"
	"github.com/kiln-build/kiln/snapshot"
	"github.com/kiln-build/kiln/worker"
)

type env struct {
	root  string
	snaps *worker.Snapshots
	base  ops.Ref
	deps  exec.Deps
}

func newEnv(t *testing.T) *env {
	t.Helper()
	testroot.RequireSlow(t, "runs containers")
	ctx := context.Background()
	root := t.TempDir()
	sn, err := snapshot.New(root, snapshot.KindAuto)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sn.Close() })
	snaps, err := worker.NewSnapshots(ctx, sn)
	if err != nil {
		t.Fatal(err)
	}
	name := testutil.BusyboxSnapshot(t, sn)
	base, err := snaps.Load(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	ex, err := runc.New(filepath.Join(root, "executor"))
	if err != nil {
		t.Fatal(err)
	}
	cm, err := exec.NewCacheMounts(filepath.Join(root, "cachemounts"))
	if err != nil {
		t.Fatal(err)
	}
	return &env{root: root, snaps: snaps, base: base, deps: exec.Deps{
		Snapshots: snaps, Executor: ex, CacheMounts: cm, StateDir: filepath.Join(root, "exec"),
	}}
}

type logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logs) Write(e progress.Event) {
	if e.Log != nil {
		l.mu.Lock()
		l.buf.Write(e.Log.Data)
		l.mu.Unlock()
	}
}

func (l *logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// run runs script in a RUN step on input 0 (the busybox base) and returns
// the result and the output.
func (e *env) run(t *testing.T, sess session.Session, script string, mounts []graph.Mount, extra ...ops.Ref) (ops.Ref, string, error) {
	t.Helper()
	v := graph.NewVertex(graph.Op{Exec: &graph.ExecOp{
		Args: []string{"/bin/sh", "-c", script}, Env: []string{testutil.DefaultPathEnv}, Cwd: "/", Root: 0, Mounts: mounts,
	}}, graph.Meta{Name: "RUN " + script})
	op := exec.New(v, sess, e.deps)
	l := &logs{}
	ctx := progress.WithWriter(context.Background(), l)
	ref, err := op.Exec(ctx, append([]ops.Ref{e.base}, extra...))
	return ref, l.String(), err
}

func readFile(t *testing.T, ref ops.Ref, p string) (string, error) {
	t.Helper()
	var data []byte
	err := ref.(*worker.SnapshotRef).WithDir(context.Background(), func(dir string) error {
		var err error
		data, err = os.ReadFile(filepath.Join(dir, p))
		return err
	})
	return string(data), err
}

type fakeSession struct {
	secrets map[string]string
	agent   string // unix socket path of an "agent", "" for none
}

func (s *fakeSession) ID() string { return "test" }
func (s *fakeSession) SyncDir(context.Context, string, session.SyncOptions, string) (session.SyncStats, error) {
	return session.SyncStats{}, errdefs.ErrUnimplemented
}
func (s *fakeSession) Secret(_ context.Context, id string) ([]byte, error) {
	v, ok := s.secrets[id]
	if !ok {
		return nil, errdefs.NotFoundf("secret %s", id)
	}
	return []byte(v), nil
}
func (s *fakeSession) DialSSH(_ context.Context, id string) (net.Conn, error) {
	if s.agent == "" {
		return nil, errdefs.NotFoundf("ssh %s", id)
	}
	return net.Dial("unix", s.agent)
}
func (s *fakeSession) Credentials(context.Context, string) (session.Credential, bool, error) {
	return session.Credential{}, false, nil
}

func TestRunWritesSnapshot(t *testing.T) {
	e := newEnv(t)
	ref, out, err := e.run(t, nil, `echo "Hello, Kiln!" > /hello.txt; echo out; echo err >&2`, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := readFile(t, ref, "hello.txt"); err != nil || got != "Hello, Kiln!\n" {
		t.Errorf("hello.txt = %q, %v", got, err)
	}
	if !strings.Contains(out, "out\n") || !strings.Contains(out, "err\n") {
		t.Errorf("output = %q, want stdout and stderr", out)
	}
}

func TestExitError(t *testing.T) {
	e := newEnv(t)
	_, _, err := e.run(t, nil, "exit 3", nil)
	var exit *executor.ExitError
	if !errors.As(err, &exit) || exit.Code != 3 {
		t.Fatalf("err = %v, want exit code 3", err)
	}
}

func TestCacheMount(t *testing.T) {
	e := newEnv(t)
	m := []graph.Mount{{Type: graph.MountCache, Target: "/cache", Input: graph.NoInput}}
	for i := 1; i <= 2; i++ {
		ref, _, err := e.run(t, nil, "echo x >> /cache/count; wc -l < /cache/count > /seen", m)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := readFile(t, ref, "seen")
		if strings.TrimSpace(got) != string(rune('0'+i)) {
			t.Errorf("run %d saw %q lines in the cache", i, got)
		}
		if _, err := readFile(t, ref, "cache/count"); err == nil {
			t.Errorf("cache content leaked into the snapshot")
		}
	}
	// A different id is a different directory; uid/gid/mode apply.
	uid, mode := 1000, uint32(0o700)
	m2 := []graph.Mount{{Type: graph.MountCache, Target: "/cache", CacheID: "other", UID: &uid, Mode: &mode, Input: graph.NoInput}}
	ref, _, err := e.run(t, nil, "ls /cache | wc -l > /n; stat -c '%u %a' /cache > /st", m2)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := readFile(t, ref, "n"); strings.TrimSpace(got) != "0" {
		t.Errorf("cache id other is not empty: %q", got)
	}
	if got, _ := readFile(t, ref, "st"); strings.TrimSpace(got) != "1000 700" {
		t.Errorf("cache dir owner/mode = %q, want 1000 700", got)
	}
}

func TestLockedCacheMountsSerialise(t *testing.T) {
	e := newEnv(t)
	m := []graph.Mount{{Type: graph.MountCache, Target: "/c", Sharing: graph.SharingLocked, Input: graph.NoInput}}
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each step fails if it sees another inside the critical section.
			_, out, err := e.run(t, nil, "test ! -e /c/busy || exit 7; touch /c/busy; sleep 0.3; rm /c/busy", m)
			if err != nil {
				t.Errorf("locked cache step: %v (%s)", err, out)
			}
		}()
	}
	wg.Wait()
}

func TestTmpfsAndBindMounts(t *testing.T) {
	e := newEnv(t)
	ref, _, err := e.run(t, nil, "echo data > /t/file; test -f /t/file", []graph.Mount{{Type: graph.MountTmpfs, Target: "/t", Input: graph.NoInput}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readFile(t, ref, "t/file"); err == nil {
		t.Errorf("tmpfs content persisted")
	}
	// Bind a previous result read-only, then writable (writes discarded).
	src, _, err := e.run(t, nil, "mkdir -p /src/sub && echo 1 > /src/sub/a", nil)
	if err != nil {
		t.Fatal(err)
	}
	ro := []graph.Mount{{Type: graph.MountBind, Target: "/m", Input: 1, Selector: "src/sub", Readonly: true}}
	ref, _, err = e.run(t, nil, "cat /m/a > /got; ! touch /m/b", ro, src)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := readFile(t, ref, "got"); got != "1\n" {
		t.Errorf("bind content = %q", got)
	}
	rw := []graph.Mount{{Type: graph.MountBind, Target: "/m", Input: 1, Selector: "src"}}
	if _, _, err := e.run(t, nil, "echo 2 > /m/sub/a", rw, src); err != nil {
		t.Fatal(err)
	}
	if got, _ := readFile(t, src, "src/sub/a"); got != "1\n" {
		t.Errorf("rw bind write reached the source: %q", got)
	}
	// A selector cannot leave its input: "../../etc" stays inside it (the
	// busybox /etc, which has no debian_version, unlike the host's).
	bad := []graph.Mount{{Type: graph.MountBind, Target: "/m", Input: 1, Selector: "../../../../etc", Readonly: true}}
	ref, _, err = e.run(t, nil, "ls /m > /ls", bad, src)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := readFile(t, ref, "ls"); strings.Contains(got, "debian_version") || !strings.Contains(got, "passwd") {
		t.Errorf("selector escaped its input: /m holds %q", got)
	}
}

func TestSecrets(t *testing.T) {
	e := newEnv(t)
	const value = "s3cr3t-value-8f1c"
	sess := &fakeSession{secrets: map[string]string{"tok": value}}
	m := []graph.Mount{
		{Type: graph.MountSecret, SecretID: "tok", Target: "/run/secrets/tok", Input: graph.NoInput, Required: true},
		{Type: graph.MountSecret, SecretID: "tok", Env: "TOKEN", Input: graph.NoInput},
	}
	ref, out, err := e.run(t, sess, `test "$(cat /run/secrets/tok)" = "$TOKEN" && echo same; cp /run/secrets/tok /copied 2>/dev/null; stat -c %a /run/secrets/tok`, m)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "same") || !strings.Contains(out, "400") {
		t.Errorf("output = %q", out)
	}
	// The step copied the secret on purpose; only that copy may hold it.
	if _, err := readFile(t, ref, "run/secrets/tok"); err == nil {
		t.Errorf("secret mount point left a file in the snapshot")
	}
	// Nothing under the daemon root holds the value except the deliberate copy.
	err = filepath.WalkDir(e.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || strings.HasSuffix(p, "/copied") {
			return nil
		}
		data, _ := os.ReadFile(p)
		if bytes.Contains(data, []byte(value)) {
			t.Errorf("secret value found in %s", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A required secret the client does not have.
	m[0].SecretID = "missing"
	_, _, err = e.run(t, sess, "true", m[:1])
	if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "secret missing: not found") {
		t.Errorf("missing secret error = %v", err)
	}
	// Not required: the step runs without it.
	m[0].Required = false
	if _, _, err := e.run(t, sess, "test ! -e /run/secrets/tok", m[:1]); err != nil {
		t.Errorf("optional missing secret: %v", err)
	}
}

func TestSSHMount(t *testing.T) {
	e := newEnv(t)
	agent := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", agent)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("agent-hello\n"))
			c.Close()
		}
	}()
	sess := &fakeSession{agent: agent}
	m := []graph.Mount{{Type: graph.MountSSH, SSHID: "default", Target: "/run/buildkit/ssh_agent.0", Input: graph.NoInput, Required: true}}
	_, out, err := e.run(t, sess, `test -S "$SSH_AUTH_SOCK" && echo socket-ok`, m)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "socket-ok") {
		t.Errorf("output = %q", out)
	}
	_, _, err = e.run(t, &fakeSession{}, "true", m)
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("missing agent error = %v", err)
	}
}

func TestCacheMapSelectors(t *testing.T) {
	v := graph.NewVertex(graph.Op{Exec: &graph.ExecOp{Args: []string{"true"}, Root: 0, Mounts: []graph.Mount{
		{Type: graph.MountBind, Target: "/ctx", Input: 1, Selector: "/src"},
		{Type: graph.MountCache, Target: "/c", Input: graph.NoInput},
	}}}, graph.Meta{})
	cm, err := exec.New(v, nil, exec.Deps{}).CacheMap(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !cm.UsesExecutor || cm.Digest != v.Op.Digest() || len(cm.Deps) != 2 || len(cm.Deps[1].Selectors) != 1 || cm.Deps[1].Selectors[0] != "src" {
		t.Errorf("CacheMap = %+v", cm)
	}
}

// TestDefaultNetwork: a step that chooses no network gets the daemon's
// default (network-mode = "none": only loopback); one that asks for the
// host's keeps it.
func TestDefaultNetwork(t *testing.T) {
	e := newEnv(t)
	e.deps.DefaultNetwork = sandbox.NetNone
	ref, _, err := e.run(t, nil, "ls /sys/class/net > /nets", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := readFile(t, ref, "nets"); strings.TrimSpace(got) != "lo" {
		t.Errorf("default network none: interfaces %q, want only lo", got)
	}
	v := graph.NewVertex(graph.Op{Exec: &graph.ExecOp{
		Args: []string{"/bin/sh", "-c", "ls /sys/class/net > /nets"}, Env: []string{testutil.DefaultPathEnv}, Root: 0, Network: sandbox.NetHost,
	}}, graph.Meta{Name: "host"})
	ref, err = exec.New(v, nil, e.deps).Exec(context.Background(), []ops.Ref{e.base})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := readFile(t, ref, "nets"); strings.TrimSpace(got) == "lo" {
		t.Errorf("--network=host got only loopback")
	}
}
