package cgroup

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/moby/sys/mountinfo"
)

func write(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFromMounts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "v2full", "cgroup.controllers"), "cpuset cpu io memory pids\n")
	write(t, filepath.Join(dir, "v2empty", "cgroup.controllers"), "hugetlb\n")
	v1 := func(mp, opts string) *mountinfo.Info {
		return &mountinfo.Info{Mountpoint: filepath.Join(dir, mp), FSType: "cgroup", VFSOptions: opts}
	}
	v2 := func(mp string) *mountinfo.Info {
		return &mountinfo.Info{Mountpoint: filepath.Join(dir, mp), FSType: "cgroup2", VFSOptions: "rw"}
	}
	tests := []struct {
		name    string
		mounts  []*mountinfo.Info
		mode    Mode
		unified string
	}{
		{"v2", []*mountinfo.Info{v2("v2full")}, V2, "v2full"},
		{"hybrid", []*mountinfo.Info{v1("cpu", "rw,cpu"), v1("cpuacct", "rw,cpuacct"), v1("memory", "rw,memory"), v2("v2empty")}, V1, "v2empty"},
		{"v1 comounted", []*mountinfo.Info{v1("cpu,cpuacct", "rw,cpu,cpuacct"), v1("memory", "rw,memory")}, V1, ""},
		{"v2 without controllers", []*mountinfo.Info{v2("v2empty")}, None, "v2empty"},
		{"v1 without memory", []*mountinfo.Info{v1("cpuacct", "rw,cpuacct")}, None, ""},
		{"nothing", nil, None, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := fromMounts(tt.mounts)
			if h.Mode() != tt.mode {
				t.Errorf("mode %v, want %v", h.Mode(), tt.mode)
			}
			want := ""
			if tt.unified != "" {
				want = filepath.Join(dir, tt.unified)
			}
			if h.Unified() != want {
				t.Errorf("unified %q, want %q", h.Unified(), want)
			}
			if len(h.mounts) != len(tt.mounts) {
				t.Errorf("%d mounts to clean, want %d", len(h.mounts), len(tt.mounts))
			}
		})
	}
}

// TestStatV2 reads a step's files as cgroup v2 writes them, in a fake
// hierarchy.
func TestStatV2(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	write(t, filepath.Join(root, "cgroup.controllers"), "cpu io memory pids\n")
	write(t, filepath.Join(root, "cpu.pressure"), "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
	h := fromMounts([]*mountinfo.Info{{Mountpoint: root, FSType: "cgroup2"}})
	// The parent's controllers as the kernel shows them once the root
	// enables them.
	write(t, filepath.Join(root, "kiln", "cgroup.controllers"), "cpu io memory pids\n")
	for _, d := range []string{"", "kiln"} {
		write(t, filepath.Join(root, d, "cgroup.subtree_control"), "")
	}
	if _, err := h.Parent("kiln"); err != nil {
		t.Fatal(err)
	}
	s, err := h.NewStep("/kiln", "abc")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "kiln", "cgroup.subtree_control")); string(got) != "+cpu +memory +io +pids" {
		t.Errorf("subtree_control of the parent: %q", got)
	}
	if s.RuntimePath() != "/kiln/abc/ctr" {
		t.Errorf("runtime path %q", s.RuntimePath())
	}
	step := filepath.Join(root, "kiln", "abc")
	write(t, filepath.Join(step, "cpu.stat"), "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n")
	write(t, filepath.Join(step, "cpu.pressure"), "some avg10=1.00 avg60=0.50 avg300=0.10 total=250000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
	write(t, filepath.Join(step, "memory.stat"), "anon 1000\nfile 2000\ninactive_file 1024\n")
	write(t, filepath.Join(step, "memory.current"), "4096\n")
	write(t, filepath.Join(step, "memory.peak"), "734003200\n")
	write(t, filepath.Join(step, "memory.pressure"), "some avg10=0.00 avg60=0.00 avg300=0.00 total=7000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
	write(t, filepath.Join(step, "memory.events"), "low 0\nhigh 0\nmax 0\noom 1\noom_kill 1\noom_group_kill 0\n")
	write(t, filepath.Join(step, "io.pressure"), "some avg10=0.00 avg60=0.00 avg300=0.00 total=30\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
	got, err := s.Stat()
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{
		CPU: 1500 * time.Millisecond, Memory: 4096, MemoryPeak: 734003200, WorkingSet: 3072, OOMKills: 1, OOMKnown: true,
		Pressure:      Pressure{CPU: 250 * time.Millisecond, Memory: 7 * time.Millisecond, IO: 30 * time.Microsecond, CPUAvg10: 1},
		PressureKnown: true,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("stats (-want +got):\n%s", d)
	}
	// The parent's Children reads the figures the scheduler samples.
	_, kids := children(t, h, "kiln")
	wantKid := Stats{CPU: want.CPU, Memory: want.Memory, WorkingSet: want.WorkingSet, Pressure: Pressure{CPU: want.Pressure.CPU, CPUAvg10: 1}, PressureKnown: true}
	if d := cmp.Diff(map[string]Stats{"abc": wantKid}, kids); d != "" {
		t.Errorf("children (-want +got):\n%s", d)
	}
	for _, f := range []string{"cpu.stat", "cpu.pressure", "memory.stat", "memory.current", "memory.peak", "memory.pressure", "memory.events", "io.pressure", "cgroup.controllers", "cgroup.subtree_control"} {
		os.Remove(filepath.Join(step, f))
	}
	if err := s.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(step); !os.IsNotExist(err) {
		t.Errorf("step cgroup still there: %v", err)
	}
}

// TestStatV1 reads a step's files as cgroup v1 writes them, in a fake
// hierarchy with a v2 half (a hybrid host) for pressure.
func TestStatV1(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	unified := filepath.Join(root, "unified")
	write(t, filepath.Join(unified, "cgroup.controllers"), "\n")
	for _, d := range []string{"", "kiln"} {
		write(t, filepath.Join(unified, d, "cgroup.subtree_control"), "")
	}
	h := fromMounts([]*mountinfo.Info{
		{Mountpoint: filepath.Join(root, "cpuacct"), FSType: "cgroup", VFSOptions: "rw,cpuacct"},
		{Mountpoint: filepath.Join(root, "memory"), FSType: "cgroup", VFSOptions: "rw,memory"},
		{Mountpoint: filepath.Join(root, "pids"), FSType: "cgroup", VFSOptions: "rw,pids"},
		{Mountpoint: unified, FSType: "cgroup2"},
	})
	if h.Mode() != V1 {
		t.Fatalf("mode %v", h.Mode())
	}
	s, err := h.NewStep("kiln", "abc")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(unified, "kiln", "abc"); s.UnifiedDir() != want {
		t.Errorf("unified dir %q, want %q", s.UnifiedDir(), want)
	}
	cpu := filepath.Join(root, "cpuacct", "kiln", "abc")
	mem := filepath.Join(root, "memory", "kiln", "abc")
	write(t, filepath.Join(cpu, "cpuacct.usage"), "2500000000\n")
	write(t, filepath.Join(cpu, "cpuacct.stat"), "user 200\nsystem 50\n")
	write(t, filepath.Join(cpu, "cpuacct.usage_percpu"), "1250000000 1250000000\n")
	write(t, filepath.Join(mem, "memory.stat"), "cache 0\nrss 1024\ntotal_inactive_file 4096\n")
	write(t, filepath.Join(mem, "memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
	write(t, filepath.Join(mem, "memory.usage_in_bytes"), "8192\n")
	write(t, filepath.Join(mem, "memory.max_usage_in_bytes"), "1073741824\n")
	write(t, filepath.Join(mem, "memory.failcnt"), "0\n")
	write(t, filepath.Join(mem, "memory.limit_in_bytes"), "9223372036854771712\n")
	write(t, filepath.Join(unified, "kiln", "abc", "cpu.stat"), "usage_usec 2400000\n")
	write(t, filepath.Join(unified, "kiln", "abc", "cpu.pressure"), "some avg10=0.00 avg60=0.00 avg300=0.00 total=1000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
	got, err := s.Stat()
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{CPU: 2500 * time.Millisecond, Memory: 8192, MemoryPeak: 1 << 30, WorkingSet: 4096, Pressure: Pressure{CPU: time.Millisecond}, PressureKnown: true}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("stats (-want +got):\n%s", d)
	}
	// The parent sees the step among its children.
	parent, kids := children(t, h, "kiln")
	want.MemoryPeak = 0 // Stat's only
	if d := cmp.Diff(map[string]Stats{"abc": want}, kids); d != "" {
		t.Errorf("children (-want +got):\n%s", d)
	}
	// The parent's own CPU pressure, from the v2 half.
	if _, _, ok := parent.CPUPressure(); ok {
		t.Error("CPU pressure known without the file")
	}
	write(t, filepath.Join(unified, "kiln", "cpu.pressure"), "some avg10=2.50 avg60=0.00 avg300=0.00 total=3000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
	if total, avg10, ok := parent.CPUPressure(); !ok || total != 3*time.Millisecond || avg10 != 2.5 {
		t.Errorf("parent CPU pressure %v, %v, %v; want 3ms, 2.5, true", total, avg10, ok)
	}
}

func TestNewStepRejectsPaths(t *testing.T) {
	t.Parallel()
	h := fromMounts(nil)
	for _, id := range []string{"", "../x", "a/b", "."} {
		if _, err := h.NewStep("/kiln", id); err == nil {
			t.Errorf("NewStep(%q) succeeded", id)
		}
	}
	if _, err := h.Parent("/"); err == nil {
		t.Error("Parent(/) succeeded")
	}
}

func TestPSISome(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in    string
		total time.Duration
		avg10 float64
		ok    bool
	}{
		{"some avg10=1.50 avg60=0.50 avg300=0.10 total=250000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=9\n", 250 * time.Millisecond, 1.5, true},
		{"full avg10=0.00 avg60=0.00 avg300=0.00 total=9\n", 0, 0, false},
		{"some avg10=0.00 total=x\n", 0, 0, false},
		{"", 0, 0, false},
	} {
		total, avg10, ok := psiSome([]byte(tc.in))
		if total != tc.total || avg10 != tc.avg10 || ok != tc.ok {
			t.Errorf("psiSome(%q) = %v, %v, %v; want %v, %v, %v", tc.in, total, avg10, ok, tc.total, tc.avg10, tc.ok)
		}
	}
}

func TestKeyValue(t *testing.T) {
	t.Parallel()
	data := []byte("inactive_anon 5\ninactive_file 1024\ntotal_inactive_file 4096\n")
	for key, want := range map[string]uint64{"inactive_file": 1024, "total_inactive_file": 4096, "inactive": 0, "missing": 0} {
		if got := keyValue(data, key); got != want {
			t.Errorf("keyValue(%q) = %d, want %d", key, got, want)
		}
	}
}

// children returns the parent group rel and what its Children reads.
func children(t *testing.T, h *Hierarchy, rel string) (*Group, map[string]Stats) {
	t.Helper()
	parent, err := h.Parent(rel)
	if err != nil {
		t.Fatal(err)
	}
	kids, err := parent.Children()
	if err != nil {
		t.Fatal(err)
	}
	return parent, kids
}
