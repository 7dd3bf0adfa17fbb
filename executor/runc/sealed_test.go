package runc

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/executor"
)

// TestSealedCopy checks that crun runs from the executor's sealed copy of
// its binary, which nothing can write, and so does not copy itself again
// on every call.
func TestSealedCopy(t *testing.T) {
	requireRoot(t)
	lower := busyboxLower(t)
	requireCrun(t)
	e := newTestExecutor(t, "crun")
	if e.rt.sealed == nil {
		t.Fatal("no sealed copy of crun")
	}
	seals, err := unix.FcntlInt(e.rt.sealed.Fd(), unix.F_GET_SEALS, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE; seals != want {
		t.Errorf("seals %#x, want exactly %#x (crun copies itself otherwise)", seals, want)
	}
	if _, err := unix.Pwrite(int(e.rt.sealed.Fd()), []byte("x"), 0); err == nil {
		t.Error("the sealed copy took a write")
	}

	// While a container runs, its runtime process (this process's child)
	// executes the copy: crun did not replace itself by a copy of its own.
	root, _ := overlayRoot(t, lower)
	done := make(chan error, 1)
	go func() {
		_, _, err := run(t, e, root, nil, executor.Process{Args: sh("sleep 1")})
		done <- err
	}()
	exes := map[string]bool{}
	deadline := time.After(10 * time.Second)
poll:
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			break poll
		case <-deadline:
			t.Fatal("the container did not end")
		case <-time.After(5 * time.Millisecond):
		}
		for _, pid := range childPIDs(t) {
			if exe, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "exe")); err == nil && !strings.HasSuffix(exe, "/sleep") && !strings.HasSuffix(exe, "/busybox") {
				exes[exe] = true
			}
		}
	}
	if len(exes) == 0 {
		t.Fatal("never saw the runtime process")
	}
	for exe := range exes {
		if exe != "/memfd:crun (deleted)" {
			t.Errorf("runtime process runs %q, want the sealed copy /memfd:crun", exe)
		}
	}
}

// childPIDs returns the processes whose parent is this one.
func childPIDs(t *testing.T) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	me := strconv.Itoa(os.Getpid())
	var pids []int
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces; it ends at the
		// last ')'.
		rest := string(data[strings.LastIndexByte(string(data), ')')+1:])
		if f := strings.Fields(rest); len(f) > 1 && f[1] == me {
			pids = append(pids, pid)
		}
	}
	return pids
}
