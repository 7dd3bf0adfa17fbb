package runc

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-build/kiln/executor"
)

// BenchmarkRunTrue measures the per-container overhead of Run: bundle,
// overlay rootfs mount, /etc files, spec, the runtime's create/start/wait
// and the cleanup, around a process that does nothing. crun runs twice:
// with Docker's seccomp profile compiled once (what kilnd does) and
// compiled by crun at every start.
func BenchmarkRunTrue(b *testing.B) {
	requireRoot(b)
	lower := busyboxLower(b)
	type variant struct {
		name, rt string
		off      bool
	}
	var variants []variant
	for _, rt := range runtimes(b) {
		variants = append(variants, variant{name: rt, rt: rt})
		if rt == "crun" {
			variants = append(variants, variant{name: "crun-seccomp-each-start", rt: rt, off: true})
		}
	}
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			e := newTestExecutor(b, v.rt)
			e.seccomp.off = v.off
			// CPU time is steadier than wall time on a shared machine.
			cpu := time.Duration(0)
			before := cpuTime(b)
			for b.Loop() {
				b.StopTimer()
				root, _ := overlayRoot(b, lower)
				b.StartTimer()
				if err := e.Run(context.Background(), root, nil, executor.Process{Args: []string{"/bin/true"}}); err != nil {
					b.Fatal(err)
				}
			}
			cpu = cpuTime(b) - before
			b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
		})
	}
}

// cpuTime is the CPU time of this process and its reaped children (the
// runtime, the containers), including the untimed parts of each loop.
func cpuTime(b *testing.B) time.Duration {
	var self, children syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &self); err != nil {
		b.Fatal(err)
	}
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children); err != nil {
		b.Fatal(err)
	}
	tv := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return tv(self.Utime) + tv(self.Stime) + tv(children.Utime) + tv(children.Stime)
}
