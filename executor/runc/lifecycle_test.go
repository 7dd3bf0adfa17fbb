package runc

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"math/big"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/kiln-build/kiln/executor"
	"github.com/kiln-build/kiln/internal/testutil"
)

// signalWriter closes ch at the first write.
type signalWriter struct {
	ch   chan struct{}
	done bool
}

func (w *signalWriter) Write(p []byte) (int, error) {
	if !w.done {
		w.done = true
		close(w.ch)
	}
	return len(p), nil
}

// uniqueSleep returns a sleep duration no other test uses, to find the
// process in /proc afterwards.
func uniqueSleep(t testing.TB) string {
	n, err := rand.Int(rand.Reader, big.NewInt(900000))
	if err != nil {
		t.Fatal(err)
	}
	return strconv.FormatInt(100000+n.Int64(), 10)
}

// processRunning reports whether a process with exactly this argv exists.
func processRunning(t testing.TB, argv ...string) bool {
	t.Helper()
	want := []byte{}
	for _, a := range argv {
		want = append(append(want, a...), 0)
	}
	dirs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range dirs {
		if got, err := os.ReadFile(p); err == nil && bytes.Equal(got, want) {
			return true
		}
	}
	return false
}

func TestRunCancel(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	lower := busyboxLower(t)
	for _, rt := range runtimes(t) {
		t.Run(rt, func(t *testing.T) {
			e := newTestExecutor(t, rt)

			t.Run("running", func(t *testing.T) {
				secs := uniqueSleep(t)
				root, _ := overlayRoot(t, lower)
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				started := &signalWriter{ch: make(chan struct{})}
				done := make(chan error, 1)
				go func() {
					done <- e.Run(ctx, root, nil, executor.Process{Args: sh("echo started; sleep " + secs), Stdout: started})
				}()
				select {
				case <-started.ch:
				case err := <-done:
					t.Fatalf("Run ended before the cancel: %v", err)
				case <-time.After(20 * time.Second):
					t.Fatal("the process did not start")
				}
				t0 := time.Now()
				cancel()
				var err error
				select {
				case err = <-done:
				case <-time.After(30 * time.Second):
					t.Fatal("Run did not return after the cancel")
				}
				elapsed := time.Since(t0)
				t.Logf("Run returned %v after the cancel", elapsed)
				if !errors.Is(err, context.Canceled) {
					t.Errorf("Run = %v, want context.Canceled", err)
				}
				// Far below the sleep: the container was killed, not waited for.
				if elapsed > 10*time.Second {
					t.Errorf("Run took %v after the cancel", elapsed)
				}
				if processRunning(t, "sleep", secs) {
					t.Errorf("sleep %s still runs", secs)
				}
				assertNoLeftovers(t, e)
			})

			t.Run("before start", func(t *testing.T) {
				root, _ := overlayRoot(t, lower)
				ctx, cancel := context.WithCancelCause(context.Background())
				cause := errors.New("build canceled by the client")
				cancel(cause)
				err := e.Run(ctx, root, nil, executor.Process{Args: sh("true")})
				if !errors.Is(err, cause) {
					t.Errorf("Run = %v, want the cancel cause", err)
				}
				assertNoLeftovers(t, e)
			})
		})
	}
}

func TestCleanupAfterCrash(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	lower := busyboxLower(t)
	for _, rt := range runtimes(t) {
		t.Run(rt, func(t *testing.T) {
			dir := t.TempDir()
			e, err := New(dir, WithRuntime(rt))
			if err != nil {
				t.Fatal(err)
			}
			secs := uniqueSleep(t)
			// The safety net for a failing test; the real check is below.
			t.Cleanup(func() { _ = e.Cleanup(context.Background()) })
			stderr := crash(t, e, lower, []string{"sleep", secs})
			for i := 0; !processRunning(t, "sleep", secs); i++ {
				if i == 100 {
					msg, _ := os.ReadFile(stderr)
					t.Fatalf("the simulated leftover container does not run (stderr %q)", msg)
				}
				time.Sleep(20 * time.Millisecond)
			}

			// The daemon restarts.
			e2, err := New(dir, WithRuntime(rt))
			if err != nil {
				t.Fatal(err)
			}
			if err := e2.Cleanup(context.Background()); err != nil {
				t.Fatalf("Cleanup: %v", err)
			}
			assertNoLeftovers(t, e2)
			for i := 0; processRunning(t, "sleep", secs); i++ {
				if i == 50 {
					t.Fatalf("sleep %s still runs after Cleanup", secs)
				}
				time.Sleep(20 * time.Millisecond) // the kernel reaps it after the kill
			}
			// Cleanup on a clean directory is a no-op.
			if err := e2.Cleanup(context.Background()); err != nil {
				t.Errorf("second Cleanup: %v", err)
			}
			// The crashed container's cgroup went with it, and Close
			// removes the parent.
			if e2.cg != nil {
				if err := e2.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				for _, m := range e2.cg.Mounts() {
					if _, err := os.Stat(filepath.Join(m, e2.cfg.cgroupParent)); !os.IsNotExist(err) {
						t.Errorf("cgroup %s left behind (%v)", filepath.Join(m, e2.cfg.cgroupParent), err)
					}
				}
			}
		})
	}
}

// crash leaves behind what a daemon killed during Run leaves: a running
// container, the rootfs and extra mounts (one attached, one staged for the
// runtime) and the bundle.
// It returns the path of the container's stderr.
func crash(t *testing.T, e *Executor, lower string, args []string) string {
	t.Helper()
	root, _ := overlayRoot(t, lower)
	const id = "crashed0123456789"
	b, err := newBundle(filepath.Join(e.dir, id))
	if err != nil {
		t.Fatal(err)
	}
	ms := newMountSet(b)
	if err := ms.mountRoot(root); err != nil {
		t.Fatal(err)
	}
	devDir := t.TempDir()
	rtMounts, err := ms.setup([]executor.Mount{
		executor.TmpfsMount("/scratch", 0),
		executor.BindMount("/dev/kiln", devDir, true),
	})
	if err != nil {
		t.Fatal(err)
	}
	spec, err := generateSpec(context.Background(), specConfig{
		id: id, rootfs: b.rootfs(), cwd: "/", cgroupsPath: path.Join("/", e.cfg.cgroupParent, id, "ctr"), runtimeMounts: rtMounts,
		proc: executor.Process{Args: args, Hostname: DefaultHostname},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.writeSpec(spec); err != nil {
		t.Fatal(err)
	}
	cmd := e.rt.command(context.Background(), "run", "--detach", "--bundle", b.dir, id)
	// A file, not a pipe: the detached container keeps its stdio open.
	stderr, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	cmd.Stderr = stderr
	if err := e.rt.start(cmd); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		msg, _ := os.ReadFile(stderr.Name())
		t.Fatalf("%s run --detach: %v: %s", e.rt.name, err, msg)
	}
	// The crashed daemon's file descriptors are gone with it.
	ms.root.Close()
	for _, am := range ms.attached {
		am.tree.Close()
	}
	return stderr.Name()
}

func TestRunConcurrent(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	lower := busyboxLower(t)
	for _, rt := range runtimes(t) {
		t.Run(rt, func(t *testing.T) {
			e := newTestExecutor(t, rt)
			const n = 6
			errs := make(chan error, n)
			outs := make([]testutil.SyncBuffer, n)
			for i := range n {
				root, _ := overlayRoot(t, lower)
				go func() {
					errs <- e.Run(context.Background(), root, []executor.Mount{executor.TmpfsMount("/scratch", 0)},
						executor.Process{Args: sh("echo " + strconv.Itoa(i) + " > /scratch/n; cat /scratch/n"), Stdout: &outs[i]})
				}()
			}
			for range n {
				if err := <-errs; err != nil {
					t.Errorf("Run: %v", err)
				}
			}
			for i := range n {
				if got := outs[i].String(); got != strconv.Itoa(i)+"\n" {
					t.Errorf("container %d printed %q", i, got)
				}
			}
		})
	}
}
