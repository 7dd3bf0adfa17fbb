package cgroup

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStepOnHost measures a process in a step's cgroup on this machine,
// the way a runtime runs one: in the step's leaf, which is removed before
// the step's totals are read.
func TestStepOnHost(t *testing.T) {
	if testing.Short() || os.Geteuid() != 0 {
		t.Skip("needs root (creates cgroups)")
	}
	h, err := Detect()
	if err != nil {
		t.Fatal(err)
	}
	if h.Mode() == None {
		t.Skip("no usable cgroup hierarchy")
	}
	t.Logf("mode %v, v2 at %q", h.Mode(), h.Unified())
	var b [6]byte
	_, _ = rand.Read(b[:])
	parent := "/kiln-test-" + hex.EncodeToString(b[:])
	pg, err := h.Parent(parent)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, m := range h.mounts {
			_ = os.Remove(filepath.Join(m, parent))
		}
	})
	s, err := h.NewStep(parent, "step")
	if err != nil {
		t.Fatal(err)
	}
	// The runtime's leaf, in every hierarchy that measures.
	var leaves []string
	switch h.Mode() {
	case V2:
		leaves = []string{filepath.Join(h.unified, s.RuntimePath())}
	case V1:
		leaves = []string{filepath.Join(h.v1root, "cpuacct", s.RuntimePath()), filepath.Join(h.v1root, "memory", s.RuntimePath())}
	}
	for _, l := range leaves {
		if err := os.Mkdir(l, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	shm := filepath.Join(t.TempDir(), "mem")
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		shm = filepath.Join("/dev/shm", "kiln-cgroup-test-"+hex.EncodeToString(b[:]))
	}
	script := `for d in ` + strings.Join(leaves, " ") + `; do echo $$ > $d/cgroup.procs || exit 1; done
i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done
head -c 67108864 /dev/zero > ` + shm + `; rm -f ` + shm
	if out, err := exec.Command("/bin/sh", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, l := range leaves {
		if err := rmdir(l); err != nil {
			t.Fatal(err)
		}
	}
	st, err := s.Stat()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("step: %+v", st)
	if st.CPU < time.Millisecond {
		t.Errorf("CPU %v: the loop ran in the step", st.CPU)
	}
	if st.MemoryPeak < 64<<20 {
		t.Errorf("peak memory %d: the step wrote 64 MiB to a tmpfs", st.MemoryPeak)
	}
	pst, err := pg.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if pst.CPU < st.CPU {
		t.Errorf("parent CPU %v < step CPU %v", pst.CPU, st.CPU)
	}
	if err := s.Remove(); err != nil {
		t.Fatal(err)
	}
	for _, m := range h.mounts {
		if _, err := os.Stat(filepath.Join(m, parent, "step")); !os.IsNotExist(err) {
			t.Errorf("step cgroup left in %s: %v", m, err)
		}
	}
}
