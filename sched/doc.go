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
//   - the running steps leave a CPU free: each step's CPU use is measured
//     in its cgroup over the last sample interval, and a step too young
//     to have been measured counts as a whole CPU. A step that sleeps
//     or waits therefore holds no CPU;
//   - the CPU pressure the steps feel (PSI "some" of their parent cgroup
//     over the last second; the machine's where the kernel keeps no
//     per-cgroup figures) is below cpu-pressure, and the machine's memory
//     and I/O pressure are below memory-pressure and io-pressure;
//   - memory stays above the reserve: the available memory
//     (/proc/meminfo MemAvailable), less what the running steps are
//     about to take (their growth over the last second, projected two
//     seconds ahead), less what a new step may need (as much as the
//     largest running or recently finished step holds), stays above
//     memory-reserve.
//
// Steps are admitted in the order they asked. While steps wait, the
// Scheduler samples every interval (50 ms by default) and admits as many
// as the rules allow; when nothing waits it samples nothing.
//
// The measurements come from a Source: HostSource reads the steps' cgroups
// (internal/cgroup), /proc/pressure and /proc/meminfo; tests use a fake.
//
// This package imports only internal/cgroup from Kiln.
package sched
