package cgroup

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
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
	// The scheduler's reading of the same step, from the files directly.
	kids, err := pg.Children()
	if err != nil {
		t.Fatal(err)
	}
	// Charged memory moves a little between two reads of an empty
	// cgroup (the kernel's per-CPU charge batches); CPU time does not.
	near := func(a, b int64) bool { return a > 0 && b > 0 && max(a-b, b-a) < 1<<20 }
	if k, ok := kids["step"]; !ok || k.CPU != st.CPU || !near(k.Memory, st.Memory) || !near(k.WorkingSet, st.WorkingSet) || k.PressureKnown != st.PressureKnown {
		t.Errorf("Children()[step] = %+v (found %v); Stat has CPU %v, memory %d, working set %d, pressure known %v", k, ok, st.CPU, st.Memory, st.WorkingSet, st.PressureKnown)
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

// BenchmarkChildren measures the scheduler's sample of four idle steps.
func BenchmarkChildren(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root (creates cgroups)")
	}
	h, err := Detect()
	if err != nil {
		b.Fatal(err)
	}
	if h.Mode() == None {
		b.Skip("no usable cgroup hierarchy")
	}
	var r [6]byte
	_, _ = rand.Read(r[:])
	parent := "/kiln-bench-" + hex.EncodeToString(r[:])
	pg, err := h.Parent(parent)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = h.RemoveParent(parent) })
	for i := range 4 {
		s, err := h.NewStep(parent, fmt.Sprintf("s%d", i))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Remove() })
	}
	for b.Loop() {
		if _, err := pg.Children(); err != nil {
			b.Fatal(err)
		}
	}
}
