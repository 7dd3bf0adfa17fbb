package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// The scheduler's cases (docs/architecture.md, sched): steps start by
// measured pressure, not by a count.

// burnCPU is a RUN command that uses one CPU-second of its own (its
// shell's user and system time, read from /proc without forking) and
// stops.
const burnCPU = `while :; do read -r l < /proc/$$/stat; set -- $l; [ $((${14}+${15})) -ge 100 ] && break; done`

// cpuCase builds 8 independent stages that each burn one CPU-second,
// cold, with the defaults (steps start by measured CPU use and pressure)
// and with max-parallelism = nproc, a fixed count that suits this build
// (alternately): the defaults must be no slower.
func cpuCase(e *env, runs int) ([]row, error) {
	dir := filepath.Join(e.dir, "cpu")
	if err := writeStages(dir, 8, func(i int) string { return fmt.Sprintf("%s && echo %d > /out", burnCPU, i) }); err != nil {
		return nil, err
	}
	// The two configurations run alternately, run after run, so that a
	// slower or faster spell of the machine falls on both alike.
	n := runtime.NumCPU()
	saved := e.workerConfig
	defer func() { e.workerConfig = saved }()
	configs := []string{"", fmt.Sprintf("max-parallelism = %d\n", n)}
	restart := func(i int) error {
		e.workerConfig = configs[i%2]
		return e.restart()
	}
	build := func() error { return e.build(dir) }
	st, err := timeClients(e, runs, restart, build, build)
	if err != nil {
		return nil, err
	}
	a, c := st[0], st[1]
	auto, autoCPU, capped, cappedCPU := a.wall, a.daemonCPU, c.wall, c.daemonCPU
	return []row{
		{name: "cpu 8x1s cold", kiln: auto, cpu: autoCPU, target: capped, note: fmt.Sprintf("(target: max-parallelism = %d)", n)},
		{name: fmt.Sprintf("cpu 8x1s max-parallelism=%d", n), kiln: capped, cpu: cappedCPU},
	}, nil
}

// memoryCase builds 4 independent stages that each allocate a share
// (-memory-fraction, 40% by default) of the machine's memory and hold it
// while they fill it: with all four at once they would need more than
// the machine has. It must finish without OOM kills (the build fails if
// the kernel kills a step; /proc/vmstat's oom_kill counts any on the
// machine).
func memoryCase(e *env, runs int) ([]row, error) {
	total, err := memTotal()
	if err != nil {
		return nil, err
	}
	size := int64(float64(total) * e.memoryFraction)
	dir := filepath.Join(e.dir, "memory")
	// dd's buffer is one block of size bytes; fullblock fills it
	// (touching every page) before writing it out.
	if err := writeStages(dir, 4, func(i int) string {
		return fmt.Sprintf("dd if=/dev/zero of=/dev/null bs=%d count=1 iflag=fullblock 2>/dev/null && echo %d > /out", size, i)
	}); err != nil {
		return nil, err
	}
	before, err := oomKills()
	if err != nil {
		return nil, err
	}
	d, err := timeIt(runs, func(int) error { return e.restart() }, func() error { return e.build(dir) })
	if err != nil {
		return nil, fmt.Errorf("the memory case failed (an OOM kill?): %w", err)
	}
	after, err := oomKills()
	if err != nil {
		return nil, err
	}
	note := "no OOM kill"
	if after > before {
		note = fmt.Sprintf("%d OOM kills on the machine meanwhile", after-before)
	}
	return []row{{
		name: fmt.Sprintf("memory 4x%.0f%% cold", 100*e.memoryFraction), kiln: d, cpu: e.cpuMedian(runs),
		note: fmt.Sprintf("(%.1f GiB each of %.1f GiB; %s)", float64(size)/(1<<30), float64(total)/(1<<30), note),
	}}, nil
}

// memTotal is /proc/meminfo's MemTotal in bytes.
func memTotal() (int64, error) {
	return procField("/proc/meminfo", "MemTotal:", 1024)
}

// oomKills is /proc/vmstat's oom_kill: the OOM kills since boot.
func oomKills() (int64, error) {
	return procField("/proc/vmstat", "oom_kill ", 1)
}

func procField(file, prefix string, unit int64) (int64, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			n, err := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n * unit, err
		}
	}
	return 0, fmt.Errorf("%s has no %s", file, strings.TrimSpace(prefix))
}
