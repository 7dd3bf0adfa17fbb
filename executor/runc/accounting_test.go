package runc

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/executor"
	"github.com/kiln-build/kiln/internal/cgroup"
)

// TestUsage checks each figure of executor.Usage against a container that
// burns CPU, holds memory and writes to disk, with either runtime, on
// this machine's cgroups (v2, or v1 on a hybrid host).
func TestUsage(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	lower := busyboxLower(t)
	for _, rt := range runtimes(t) {
		t.Run(rt, func(t *testing.T) {
			t.Parallel()
			e := newTestExecutor(t, rt)
			mode, err := e.Accounting()
			if mode == cgroup.None {
				t.Skipf("containers are not measured here: %v", err)
			}
			root, upper := overlayRoot(t, lower)
			var u executor.Usage
			// 0.3 s of CPU at least, 48 MiB in a tmpfs, 8 MiB written to
			// the root (synced, so it reaches the disk).
			script := `i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done
head -c 50331648 /dev/zero > /mem/fill
head -c 8388608 /dev/urandom > /out; sync /out`
			_, errOut, err := run(t, e, root, []executor.Mount{executor.TmpfsMount("/mem", 64<<20)}, executor.Process{Args: sh(script), Usage: &u})
			if err != nil {
				t.Fatalf("Run: %v (%s)", err, errOut)
			}
			t.Logf("%s: %+v", mode, u)
			if _, err := os.Stat(filepath.Join(upper, "out")); err != nil {
				t.Fatal(err)
			}
			if u.Wall <= 0 || u.CPU < 10*time.Millisecond || u.CPU > u.Wall*4 {
				t.Errorf("wall %v, CPU %v: want the loop's CPU time, within the wall time of 2 CPUs", u.Wall, u.CPU)
			}
			if u.MemoryPeak < 48<<20 {
				t.Errorf("peak memory %d MiB, want ≥ 48 MiB (the tmpfs file)", u.MemoryPeak>>20)
			}
			if u.IOWrite < 8<<20 {
				t.Errorf("written %d bytes, want ≥ 8 MiB", u.IOWrite)
			}
			if u.OOMKilled {
				t.Error("OOMKilled without an OOM kill")
			}
			// The step's cgroup is gone again.
			for _, m := range e.cg.Mounts() {
				ents, _ := os.ReadDir(filepath.Join(m, e.cfg.cgroupParent))
				for _, ent := range ents {
					if ent.IsDir() {
						t.Errorf("cgroup left behind: %s", filepath.Join(m, e.cfg.cgroupParent, ent.Name()))
					}
				}
			}
		})
	}
}

// TestOOMKill runs a container that outgrows its memory limit and
// expects the error to say the OOM killer ended it.
func TestOOMKill(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	lower := busyboxLower(t)
	for _, rt := range runtimes(t) {
		t.Run(rt, func(t *testing.T) {
			t.Parallel()
			e := newTestExecutor(t, rt)
			if mode, err := e.Accounting(); mode == cgroup.None {
				t.Skipf("containers are not measured here: %v", err)
			}
			e.cfg.memoryLimit = 32 << 20
			root, _ := overlayRoot(t, lower)
			var u executor.Usage
			_, _, err := run(t, e, root, []executor.Mount{executor.TmpfsMount("/mem", 256<<20)},
				executor.Process{Args: sh("head -c 134217728 /dev/zero > /mem/fill"), Usage: &u})
			var exit *executor.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("Run: %v; want an *executor.ExitError", err)
			}
			if !exit.OOMKilled || !u.OOMKilled {
				t.Fatalf("error %q (OOMKilled %v, usage %+v): want an OOM kill", err, exit.OOMKilled, u)
			}
			if !strings.Contains(err.Error(), "killed by the OOM killer") || !strings.Contains(err.Error(), "the step used ") {
				t.Errorf("error %q: want it to name the OOM killer and the memory used", err)
			}
			if u.MemoryPeak < 24<<20 {
				t.Errorf("peak memory %d MiB, want about the 32 MiB limit", u.MemoryPeak>>20)
			}
		})
	}
}
