package runc

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/moby/sys/mountinfo"

	"github.com/kiln-build/kiln/executor"
	"github.com/kiln-build/kiln/internal/testroot"
	"github.com/kiln-build/kiln/internal/testutil"
)

const testPasswd = `root:x:0:0:root:/root:/bin/sh
app:x:1000:1000:app:/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
`

const testGroup = `root:x:0:
staff:x:50:app
app:x:1000:
nogroup:x:65534:
`

// requireRoot skips tests that mount and run containers.
func requireRoot(t testing.TB) {
	t.Helper()
	testroot.RequireSlow(t, "runs containers with runc")
}

// runtimes are the OCI runtimes to test with; crun only when installed.
func runtimes(t testing.TB) []string {
	rts := []string{"runc"}
	if _, err := exec.LookPath("crun"); err == nil {
		rts = append(rts, "crun")
	} else {
		t.Log("crun not installed: testing runc only")
	}
	return rts
}

// requireCrun skips tests of crun-only behaviour where crun is missing.
func requireCrun(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("crun"); err != nil {
		t.Skip("crun not installed")
	}
}

// sharedLower is the busybox root filesystem all tests of the package use
// as their (never written) lower dir; TestMain removes it.
var sharedLower struct {
	once sync.Once
	dir  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedLower.dir != "" {
		os.RemoveAll(sharedLower.dir)
	}
	os.Exit(code)
}

// busyboxLower returns a root filesystem built from the host's
// /bin/busybox: the binary, a symlink per applet, /etc/passwd and
// /etc/group (user app, uid 1000, in group staff) and /tmp. It has no
// /proc, /dev, /sys or /etc/hosts: the executor must provide them and leave
// no trace. Tests must not modify it; add a layer with overlayRoot instead.
func busyboxLower(t testing.TB) string {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("skipping: busybox-static is not installed")
	}
	sharedLower.once.Do(func() {
		sharedLower.dir, sharedLower.err = os.MkdirTemp("", "kiln-executor-lower-")
		if sharedLower.err == nil {
			sharedLower.err = buildBusyboxRootfs(bb, sharedLower.dir)
		}
	})
	if sharedLower.err != nil {
		t.Fatalf("build busybox rootfs: %v", sharedLower.err)
	}
	return sharedLower.dir
}

func buildBusyboxRootfs(bb, dir string) error {
	for _, d := range []string{"bin", "etc", "tmp", "home/app"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		return err
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), data, 0o755); err != nil {
		return err
	}
	out, err := exec.Command(bb, "--list").Output()
	if err != nil {
		return fmt.Errorf("busybox --list: %w", err)
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" || strings.Contains(applet, "/") {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", applet)); err != nil {
			return err
		}
	}
	files := map[string]string{"etc/passwd": testPasswd, "etc/group": testGroup}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return os.Chown(filepath.Join(dir, "home/app"), 1000, 1000)
}

func writeFile(t testing.TB, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// overlayRoot returns the root Mount of an overlay over the lower dirs
// (topmost first; a snapshot, as the snapshotter hands it out) and the
// upper dir that receives the writes.
func overlayRoot(t testing.TB, lower ...string) (executor.Mount, string) {
	t.Helper()
	d := t.TempDir()
	upper, work := filepath.Join(d, "upper"), filepath.Join(d, "work")
	for _, p := range []string{upper, work} {
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return executor.Mount{
		Dest: "/",
		Source: []mount.Mount{{
			Type:    "overlay",
			Source:  "overlay",
			Options: []string{"lowerdir=" + strings.Join(lower, ":"), "upperdir=" + upper, "workdir=" + work},
		}},
	}, upper
}

// newTestExecutor returns an Executor rooted in a temporary directory and
// checks, when the test ends, that nothing of it is left: no container, no
// mount and no bundle.
func newTestExecutor(t testing.TB, rt string, opts ...Option) *Executor {
	t.Helper()
	root := t.TempDir()
	e, err := New(root, append([]Option{WithRuntime(rt)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		assertNoLeftovers(t, e)
		if err := e.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

func assertNoLeftovers(t testing.TB, e *Executor) {
	t.Helper()
	ids, err := e.rt.list(context.Background())
	if err != nil {
		t.Errorf("list containers: %v", err)
	}
	if len(ids) > 0 {
		t.Errorf("containers left behind: %v", ids)
	}
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(e.dir))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mounts {
		t.Errorf("mount left behind: %s", m.Mountpoint)
	}
	entries, err := os.ReadDir(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range entries {
		if ent.Name() != stateDirName {
			t.Errorf("bundle left behind: %s", ent.Name())
		}
	}
}

// run runs a shell script in a fresh overlay over lower and returns its
// stdout, stderr and error.
func run(t testing.TB, e *Executor, root executor.Mount, mounts []executor.Mount, p executor.Process) (string, string, error) {
	t.Helper()
	var stdout, stderr testutil.SyncBuffer
	p.Stdout, p.Stderr = &stdout, &stderr
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := e.Run(ctx, root, mounts, p)
	return stdout.String(), stderr.String(), err
}

func sh(script string) []string { return []string{"/bin/sh", "-c", script} }

// statusField returns the value of a field of /proc/self/status output.
func statusField(status, field string) string {
	for _, line := range strings.Split(status, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == field {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func owner(fi os.FileInfo) (uint32, uint32) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0
	}
	return st.Uid, st.Gid
}
