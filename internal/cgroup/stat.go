package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
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
	return g.stat(cgroup2.StatCPU | cgroup2.StatMemory | cgroup2.StatMemoryEvents | cgroup2.StatIO)
}

// stat reads what mask selects of a v2 group (a v1 group: all of it).
func (g *Group) stat(mask cgroup2.StatMask) (Stats, error) {
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
// running below a parent), by name: CPU time, memory and their pressure,
// what the scheduler samples every few ms (not OOM events or I/O, which
// Stat reads). A child that goes away while it is read is left out.
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
		c := &Group{h: g.h, rel: path.Join(g.rel, e.Name())}
		switch g.h.mode {
		case V2:
			if c.v2, err = cgroup2.Load(c.rel, cgroup2.WithMountpoint(g.h.unified)); err != nil {
				continue
			}
		case V1:
			if c.v1, err = cgroup1.Load(cgroup1.StaticPath(c.rel), cgroup1.WithHierarchy(g.h.v1Subsystems)); err != nil {
				continue
			}
			if g.v2 != nil {
				c.v2, _ = cgroup2.Load(c.rel, cgroup2.WithMountpoint(g.h.unified))
			}
		}
		st, err := c.stat(cgroup2.StatCPU | cgroup2.StatMemory)
		if err != nil {
			continue // gone meanwhile
		}
		out[e.Name()] = st
	}
	return out, nil
}

// isBusy reports whether err is EBUSY (a cgroup still has processes or
// children).
func isBusy(err error) bool { return errors.Is(err, unix.EBUSY) }
