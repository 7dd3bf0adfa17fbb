package sched

import (
	"fmt"
	"time"

	"github.com/prometheus/procfs"

	"github.com/kiln-build/kiln/internal/cgroup"
)

// Sample is one measurement of the machine and of the running steps.
// Counters are totals since some point in the past; the Scheduler looks
// at how they move between samples.
type Sample struct {
	Time time.Time
	// Steps holds each running step's usage by its cgroup's name; nil
	// when steps are not measured.
	Steps map[string]StepSample
	// CPUStall, MemoryStall and IOStall are PSI "some" totals: how long
	// at least one task waited. CPU is the steps' own (their parent
	// cgroup) when StepsCPUStall, else the machine's; memory and I/O
	// are the machine's. PressureKnown is false without PSI.
	CPUStall, MemoryStall, IOStall time.Duration
	PressureKnown, StepsCPUStall   bool
	// CPUAvg10, MemoryAvg10 and IOAvg10 are the kernel's ten-second
	// averages of the same pressures, in percent: what a decision uses
	// before samples span enough time.
	CPUAvg10, MemoryAvg10, IOAvg10 float64
	// MemAvailable is the memory available for new work (bytes, 0 when
	// unknown); MemTotal the machine's.
	MemAvailable, MemTotal int64
}

// StepSample is one running step's usage.
type StepSample struct {
	CPU time.Duration // total CPU time
	// CPUStall is the step's own PSI "some" CPU total: how long one of
	// its tasks was runnable but waited for a CPU (0 when unknown).
	// CPU and CPUStall together grow at about one per second for each
	// CPU the step would use if it had them.
	CPUStall time.Duration
	Memory   int64 // working set: charged memory less inactive file cache
}

// Source takes samples.
type Source interface {
	Sample() (Sample, error)
}

// HostSource measures this machine: the steps below the cgroup parent
// (nil when steps are not measured), /proc/pressure and /proc/meminfo.
type HostSource struct {
	steps *cgroup.Group
	proc  procfs.FS
}

var _ Source = (*HostSource)(nil)

// NewHostSource returns a Source reading /proc and the children of steps.
func NewHostSource(steps *cgroup.Group) (*HostSource, error) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return nil, fmt.Errorf("open /proc: %w", err)
	}
	return &HostSource{steps: steps, proc: fs}, nil
}

// Sample implements Source.
func (h *HostSource) Sample() (Sample, error) {
	s := Sample{Time: time.Now()}
	if h.steps != nil {
		kids, err := h.steps.Children()
		if err != nil {
			return Sample{}, err
		}
		s.Steps = make(map[string]StepSample, len(kids))
		for name, st := range kids {
			smp := StepSample{CPU: st.CPU, Memory: st.WorkingSet}
			if st.PressureKnown {
				smp.CPUStall = st.Pressure.CPU
			}
			s.Steps[name] = smp
		}
		s.CPUStall, s.CPUAvg10, s.StepsCPUStall = h.steps.CPUPressure()
	}
	some := func(resource string) (time.Duration, float64, bool) {
		st, err := h.proc.PSIStatsForResource(resource)
		if err != nil || st.Some == nil {
			return 0, 0, false
		}
		return time.Duration(st.Some.Total) * time.Microsecond, st.Some.Avg10, true
	}
	if total, avg, ok := some("cpu"); ok {
		s.PressureKnown = true
		if !s.StepsCPUStall {
			s.CPUStall, s.CPUAvg10 = total, avg
		}
		s.MemoryStall, s.MemoryAvg10, _ = some("memory")
		s.IOStall, s.IOAvg10, _ = some("io")
	}
	if mi, err := h.proc.Meminfo(); err == nil {
		if mi.MemAvailableBytes != nil {
			s.MemAvailable = int64(*mi.MemAvailableBytes)
		}
		if mi.MemTotalBytes != nil {
			s.MemTotal = int64(*mi.MemTotalBytes)
		}
	}
	return s, nil
}
