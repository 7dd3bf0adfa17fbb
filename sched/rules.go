package sched

import "time"

// reasonLocked returns why the next step must wait, "" if it may start.
func (s *Scheduler) reasonLocked() string {
	if s.running == 0 {
		return "" // a build always makes progress
	}
	if s.cfg.MaxParallelism > 0 && s.running >= s.cfg.MaxParallelism {
		return ReasonMaxParallelism
	}
	if len(s.samples) > 0 && s.measuring() {
		return ReasonMeasuring
	}
	if s.cpuDemand()+1 > float64(s.cfg.CPUs)+cpuSlack {
		return ReasonCPU
	}
	if len(s.samples) > 0 {
		cpu, mem, io, ok := s.pressure()
		switch {
		case !ok:
		case s.cfg.CPUPressure > 0 && cpu >= s.cfg.CPUPressure && s.running >= s.cfg.CPUs:
			// With fewer steps than CPUs the rule above decides: the
			// pressure may come from other work on the machine, and
			// holding a step then makes a build slower than a fixed
			// max-parallelism = CPUs would.
			return ReasonCPUPressure
		case s.cfg.MemoryPressure > 0 && mem >= s.cfg.MemoryPressure:
			return ReasonMemoryPressure
		case s.cfg.IOPressure > 0 && io >= s.cfg.IOPressure:
			return ReasonIOPressure
		}
		if !s.memoryFits() {
			return ReasonMemory
		}
	}
	return ""
}

// measuring reports whether a running step has not been measured long
// enough to tell how fast its memory grows: one whose cgroup has run
// something (CPU time) for less than measureFor of samples, or one
// admitted less than unseenFor ago whose cgroup no sample has shown
// running yet (a cgroup is made before its container starts, and a
// container may take a while to start on a busy machine). Steps that
// are not measured at all (no cgroups) never count.
func (s *Scheduler) measuring() bool {
	last := s.samples[len(s.samples)-1]
	if last.Steps == nil {
		return false
	}
	started := 0
	for name, st := range last.Steps {
		if st.CPU <= 0 {
			continue
		}
		started++
		seen := false
		for _, old := range s.samples[:len(s.samples)-1] {
			if o, ok := old.Steps[name]; ok && o.CPU > 0 {
				seen = last.Time.Sub(old.Time) >= measureFor
				break
			}
		}
		if !seen {
			return true
		}
	}
	if s.running <= started {
		return false
	}
	for _, at := range s.live {
		if last.Time.Sub(at) < unseenFor {
			return true
		}
	}
	return false
}

// cpuDemand is the CPUs the running steps would use: each measured
// step's CPU time over the last interval plus the time its tasks waited
// for a CPU (so a step that gets half a CPU because the machine is busy
// still counts as wanting a whole one), plus one CPU for every running
// step that has not been measured twice yet (its rate is unknown).
func (s *Scheduler) cpuDemand() float64 {
	n := len(s.samples)
	if n == 0 || s.samples[n-1].Steps == nil {
		return float64(s.running)
	}
	last := s.samples[n-1]
	// The newest sample at least an interval older: the Scheduler
	// samples every measureTick at times, and CPU time over so short a
	// span is mostly noise.
	var prev *Sample
	for i := n - 2; i >= 0; i-- {
		prev = &s.samples[i]
		if last.Time.Sub(prev.Time) >= s.cfg.Interval {
			break
		}
	}
	demand, measured := 0.0, 0
	for name, st := range last.Steps {
		if prev == nil {
			continue
		}
		before, ok := prev.Steps[name]
		dt := last.Time.Sub(prev.Time)
		if !ok || dt <= 0 {
			continue
		}
		measured++
		used := st.CPU + st.CPUStall - before.CPU - before.CPUStall
		demand += max(0, used.Seconds()/dt.Seconds())
	}
	// Steps admitted but not (yet, or any more) measured count whole.
	return demand + float64(max(0, s.running-measured))
}

// pressure returns the pressures (percent) over the last second, or the
// kernel's ten-second averages while fewer samples span less than
// minWindow, and whether they are known.
func (s *Scheduler) pressure() (cpu, mem, io float64, ok bool) {
	last := s.samples[len(s.samples)-1]
	first := s.samples[0]
	dt := last.Time.Sub(first.Time)
	if !last.PressureKnown {
		return 0, 0, 0, false
	}
	if !first.PressureKnown || dt < minWindow || last.StepsCPUStall != first.StepsCPUStall {
		return last.CPUAvg10, last.MemoryAvg10, last.IOAvg10, true
	}
	pct := func(a, b time.Duration) float64 { return max(0, 100*float64(b-a)/float64(dt)) }
	return pct(first.CPUStall, last.CPUStall), pct(first.MemoryStall, last.MemoryStall), pct(first.IOStall, last.IOStall), true
}

// memoryFits reports whether no running step is still filling memory
// (growing faster than 1/growingShare of the machine's memory, or
// minGrowing, a second), and a new step, and every admitted step not measured
// yet, may each take what the largest running or recently finished step
// holds, and the memory reserve still stays available after the running
// steps' projected growth.
func (s *Scheduler) memoryFits() bool {
	last := s.samples[len(s.samples)-1]
	if last.MemAvailable <= 0 {
		return true // unknown
	}
	need := int64(0)
	for _, st := range last.Steps {
		need = max(need, st.Memory)
	}
	for _, r := range s.recent {
		need = max(need, r.memory)
	}
	unseen := int64(max(0, s.running-len(last.Steps)))
	machine := last.MemTotal
	if machine <= 0 {
		machine = last.MemAvailable
	}
	growth := int64(0)
	for name, st := range last.Steps {
		// Its growth since the oldest sample that has it.
		for _, old := range s.samples[:len(s.samples)-1] {
			before, ok := old.Steps[name]
			if !ok {
				continue
			}
			if dt := last.Time.Sub(old.Time); dt > 0 && st.Memory > before.Memory {
				rate := float64(st.Memory-before.Memory) / dt.Seconds()
				if rate > max(float64(machine)/growingShare, minGrowing) {
					// Still filling memory, and how far it will go is
					// unknown: no step starts beside it until it stops.
					return false
				}
				growth += int64(rate * growthHorizon.Seconds())
			}
			break
		}
	}
	return last.MemAvailable-growth-need*(1+unseen) >= s.cfg.MemoryReserve
}
