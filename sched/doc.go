// Package sched decides when a build step that runs a container may start:
// by measuring the machine, not by counting slots.
//
// A fixed number of slots is wrong both ways: steps that sleep, wait for
// the network or for I/O hold slots they do not use, and steps that each
// want several CPUs or gigabytes of memory overload the machine long
// before the count is reached. The Scheduler admits a step when:
//
//   - no other step runs (a build always makes progress); or else
//   - max-parallelism, when set, is not reached (a hard cap); and
//   - every running step has been measured: its cgroup was seen running
//     (with CPU time) in samples at least 20 ms apart (the Scheduler
//     samples every 5 ms while it waits for that), so a step that fills
//     memory is seen growing before another starts beside it. A step
//     admitted less than 2 s ago whose cgroup has run nothing yet (a
//     cgroup is made before its container starts) counts as not
//     measured;
//   - the running steps leave a CPU free: each step's demand is its CPU
//     time over the last sample interval plus the time its tasks waited
//     for a CPU (its own PSI), so a step that gets half a CPU on a busy
//     machine still wants a whole one; a step too young to have been
//     measured counts as a whole CPU. A step that sleeps or waits for
//     I/O therefore holds no CPU;
//   - when as many steps run as there are CPUs, the CPU pressure the
//     steps feel (PSI "some" of their parent cgroup over the last
//     second; the machine's where the kernel keeps no per-cgroup
//     figures) is below cpu-pressure. With fewer steps the demand rule
//     decides: the pressure may be other work's, and holding the step
//     would be slower than a fixed max-parallelism = CPUs;
//   - the machine's memory and I/O pressure are below memory-pressure
//     and io-pressure;
//   - no running step is still filling memory (growing faster than a
//     1024th of the machine's memory, 8 MiB at least, a second, over the
//     last second): where it ends is unknown, so nothing starts beside
//     it until it stops. A build whose steps grow slowly for long runs
//     them one at a time while they grow, rather than risk the OOM
//     killer;
//   - memory stays above the reserve: the available memory
//     (/proc/meminfo MemAvailable), less what the running steps are
//     about to take (their growth over the last second, projected five
//     seconds ahead), less what a new step may need (as much as the
//     largest running or recently finished step holds), stays above
//     memory-reserve.
//
// A step the kernel's OOM killer hits anyway fails saying so (the
// executor reads its cgroup's memory.events).
//
// Steps are admitted in the order they asked. While steps wait, the
// Scheduler samples every interval (50 ms by default), or every 5 ms
// while a running step is being measured or a memory hold is less than
// 250 ms old (a program that starts grows for a moment), and admits as
// many as the rules allow; when nothing waits it samples nothing.
//
// The measurements come from a Source: HostSource reads the steps' cgroups
// (internal/cgroup), /proc/pressure and /proc/meminfo; tests use a fake.
//
// This package imports only internal/cgroup from Kiln.
package sched
