package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/cgroups/v3/cgroup1"
	v1stats "github.com/containerd/cgroups/v3/cgroup1/stats"
	"github.com/containerd/cgroups/v3/cgroup2"
	v2stats "github.com/containerd/cgroups/v3/cgroup2/stats"
	"golang.org/x/sys/unix"
)

// Stats is what a cgroup's processes used, totals since it was created.
type Stats struct {
	// CPU is the CPU time (user and system) of its processes.
	CPU time.Duration
	// Memory is the memory charged to it now, and MemoryPeak the most it
	// was charged at once (page cache included, as the kernel counts
	// it). Zero when unknown.
	Memory, MemoryPeak int64
	// WorkingSet is Memory less the inactive file cache, which the
	// kernel can drop at once (the kubelet's measure).
	WorkingSet int64
	// OOMKills counts processes the OOM killer killed in it; OOMKnown
	// says whether the kernel reports it (cgroup v2 with the memory
	// controller).
	OOMKills int64
	OOMKnown bool
	// Pressure holds its PSI stall totals, when PressureKnown.
	Pressure      Pressure
	PressureKnown bool
}

// Pressure is PSI's "some" stall time: how long at least one task was
// waiting for the resource. Rates over an interval are the pressure
// percentages /proc/pressure shows.
type Pressure struct {
	CPU, Memory, IO time.Duration
	// CPUAvg10 is the kernel's ten-second average of the CPU pressure,
	// in percent.
	CPUAvg10 float64
}

// Group is one cgroup, read by Stat. Parent and NewStep make them.
type Group struct {
	h   *Hierarchy
	rel string
	v1  cgroup1.Cgroup   // V1 mode
	v2  *cgroup2.Manager // V2 mode, or the v2 half of a hybrid host
}

// Path is the group's cgroup path ("/kiln").
func (g *Group) Path() string { return g.rel }

// Stat reads the group's totals. In mode None it returns zero Stats.
func (g *Group) Stat() (Stats, error) {
	const mask = cgroup2.StatCPU | cgroup2.StatMemory | cgroup2.StatMemoryEvents | cgroup2.StatIO
	var st Stats
	switch g.h.mode {
	case V2:
		m, err := g.v2.StatFiltered(mask)
		if err != nil {
			return Stats{}, fmt.Errorf("read cgroup %s: %w", g.rel, err)
		}
		fromV2(&st, m)
		if mem := m.GetMemory(); mem != nil {
			st.Memory, st.MemoryPeak = int64(mem.GetUsage()), int64(mem.GetMaxUsage())
			st.WorkingSet = workingSet(mem.GetUsage(), mem.GetInactiveFile())
		}
		if ev := m.GetMemoryEvents(); ev != nil {
			st.OOMKills, st.OOMKnown = int64(ev.GetOomKill()), true
		}
		if m.GetCPU() != nil {
			st.CPU = time.Duration(m.GetCPU().GetUsageUsec()) * time.Microsecond
		}
	case V1:
		m, err := g.v1.Stat(cgroup1.IgnoreNotExist)
		if err != nil {
			return Stats{}, fmt.Errorf("read cgroup %s: %w", g.rel, err)
		}
		fromV1(&st, m)
		if g.v2 != nil {
			// The hybrid host's v2 half: pressure only.
			p, err := g.v2.StatFiltered(mask &^ cgroup2.StatMemoryEvents)
			if err != nil {
				return Stats{}, fmt.Errorf("read cgroup %s in %s: %w", g.rel, g.h.unified, err)
			}
			fromV2(&st, p)
		}
	}
	return st, nil
}

// fromV2 takes the pressure totals of a v2 group's metrics.
func fromV2(st *Stats, m *v2stats.Metrics) {
	cpu := m.GetCPU().GetPSI().GetSome()
	if cpu == nil {
		return
	}
	st.PressureKnown = true
	us := func(d *v2stats.PSIData) time.Duration { return time.Duration(d.GetTotal()) * time.Microsecond }
	st.Pressure = Pressure{
		CPU:      us(cpu),
		Memory:   us(m.GetMemory().GetPSI().GetSome()),
		IO:       us(m.GetIo().GetPSI().GetSome()),
		CPUAvg10: cpu.GetAvg10(),
	}
}

func fromV1(st *Stats, m *v1stats.Metrics) {
	st.CPU = time.Duration(m.GetCPU().GetUsage().GetTotal())
	if u := m.GetMemory().GetUsage(); u != nil {
		st.Memory, st.MemoryPeak = int64(u.GetUsage()), int64(u.GetMax())
		st.WorkingSet = workingSet(u.GetUsage(), m.GetMemory().GetTotalInactiveFile())
	}
}

func workingSet(usage, inactiveFile uint64) int64 {
	if inactiveFile > usage {
		return 0
	}
	return int64(usage - inactiveFile)
}

// Children returns the usage of each cgroup directly below g (the steps
// running below a parent), by name: CPU time, memory now, working set
// and CPU pressure, what the scheduler samples every few ms. The other
// fields are zero (Stat reads them). A child that goes away while it is
// read is left out.
//
// It reads the few files those figures live in itself rather than load
// each child through containerd/cgroups, whose Stat reads every file of
// every controller: 1.3 ms for four idle steps on a hybrid host, 0.45 ms
// this way (BenchmarkChildren), and 3-11 ms against 1-2 ms while steps
// start beside it, on a path the scheduler takes every 5 ms while steps
// wait to start.
func (g *Group) Children() (map[string]Stats, error) {
	dir := ""
	switch g.h.mode {
	case V2:
		dir = filepath.Join(g.h.unified, g.rel)
	case V1:
		dir = filepath.Join(g.h.v1root, "memory", g.rel)
	default:
		return nil, nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list cgroup %s: %w", g.rel, err)
	}
	out := map[string]Stats{}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		st, err := g.h.usage(path.Join(g.rel, e.Name()))
		if err != nil {
			continue // gone meanwhile
		}
		out[e.Name()] = st
	}
	return out, nil
}

// CPUPressure returns g's PSI "some" CPU total and ten-second average,
// and whether the kernel keeps them for it (a cgroup v2 hierarchy, or a
// hybrid host's v2 half, with PSI).
func (g *Group) CPUPressure() (total time.Duration, avg10 float64, ok bool) {
	return g.h.cpuPressure(g.rel)
}

// cpuPressure reads the cgroup rel's CPU pressure from the v2 hierarchy.
func (h *Hierarchy) cpuPressure(rel string) (total time.Duration, avg10 float64, ok bool) {
	if h.unified == "" {
		return 0, 0, false
	}
	// The kernel has PSI per cgroup when the file is there.
	data, err := os.ReadFile(filepath.Join(h.unified, rel, "cpu.pressure"))
	if err != nil {
		return 0, 0, false
	}
	return psiSome(data)
}

// usage reads one cgroup's CPU time, memory, working set and CPU
// pressure from its files (see Children).
func (h *Hierarchy) usage(rel string) (Stats, error) {
	var st Stats
	var memStat []byte
	switch h.mode {
	case V2:
		d := filepath.Join(h.unified, rel)
		usec, err := readKey(filepath.Join(d, "cpu.stat"), "usage_usec")
		if err != nil {
			return Stats{}, err
		}
		st.CPU = time.Duration(usec) * time.Microsecond
		// Without the memory controller the files are missing, and
		// memory is unknown (zero), as Stat has it.
		if cur, err := readUint(filepath.Join(d, "memory.current")); err == nil {
			st.Memory = int64(cur)
			if memStat, err = os.ReadFile(filepath.Join(d, "memory.stat")); err != nil {
				return Stats{}, err
			}
			st.WorkingSet = workingSet(cur, keyValue(memStat, "inactive_file"))
		}
	case V1:
		ns, err := readUint(filepath.Join(h.v1root, "cpuacct", rel, "cpuacct.usage"))
		if err != nil {
			return Stats{}, err
		}
		st.CPU = time.Duration(ns)
		d := filepath.Join(h.v1root, "memory", rel)
		cur, err := readUint(filepath.Join(d, "memory.usage_in_bytes"))
		if err != nil {
			return Stats{}, err
		}
		if memStat, err = os.ReadFile(filepath.Join(d, "memory.stat")); err != nil {
			return Stats{}, err
		}
		st.Memory = int64(cur)
		st.WorkingSet = workingSet(cur, keyValue(memStat, "total_inactive_file"))
	}
	if total, avg10, ok := h.cpuPressure(rel); ok {
		st.Pressure, st.PressureKnown = Pressure{CPU: total, CPUAvg10: avg10}, true
	}
	return st, nil
}

// readUint reads a file holding one decimal number.
func readUint(file string) (uint64, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", file, err)
	}
	return v, nil
}

// readKey reads the value of key in a flat-keyed file ("key value"
// lines), such as cpu.stat.
func readKey(file, key string) (uint64, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	return keyValue(data, key), nil
}

// keyValue returns key's value in flat-keyed data, 0 when absent.
func keyValue(data []byte, key string) uint64 {
	for line := range strings.Lines(string(data)) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if ok && k == key {
			n, _ := strconv.ParseUint(v, 10, 64)
			return n
		}
	}
	return 0
}

// psiSome parses the "some" line of a PSI file ("some avg10=0.00 avg60=0.00
// avg300=0.00 total=1000"): its total stall (microseconds in the file)
// and ten-second average.
func psiSome(data []byte) (total time.Duration, avg10 float64, ok bool) {
	for line := range strings.Lines(string(data)) {
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] != "some" {
			continue
		}
		for _, f := range fields[1:] {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "avg10":
				avg10, _ = strconv.ParseFloat(v, 64)
			case "total":
				us, err := strconv.ParseUint(v, 10, 64)
				if err != nil {
					return 0, 0, false
				}
				total, ok = time.Duration(us)*time.Microsecond, true
			}
		}
	}
	return total, avg10, ok
}

// isBusy reports whether err is EBUSY (a cgroup still has processes or
// children).
func isBusy(err error) bool { return errors.Is(err, unix.EBUSY) }
