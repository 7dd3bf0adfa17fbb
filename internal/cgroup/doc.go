// Package cgroup measures build steps with Linux control groups.
//
// Detect looks at the machine once, when the daemon starts, and picks how
// steps are measured:
//
//   - cgroup v2 (the unified hierarchy at /sys/fs/cgroup, the normal case):
//     a step's CPU time from cpu.stat, its peak memory from memory.peak,
//     OOM kills from memory.events and its pressure (PSI) from
//     cpu.pressure, memory.pressure and io.pressure;
//   - cgroup v1, alone or beside a v2 hierarchy without the controllers
//     (a "hybrid" host): CPU time from cpuacct.usage and peak memory from
//     memory.max_usage_in_bytes. When the hybrid host's v2 hierarchy is
//     mounted (/sys/fs/cgroup/unified), steps are also placed there: PSI
//     is kept per cgroup even without controllers, so the steps' own CPU
//     pressure is known there too.
//
// A step's cgroup is <parent>/<id> in every hierarchy that measures, and
// the OCI runtime is told to put the container one level below it, in
// <parent>/<id>/ctr (Step.RuntimePath). The runtime removes its own cgroup
// when the container exits, before Kiln could read it; the kernel keeps
// the usage of removed children in their parent, so <parent>/<id> still
// holds the step's totals when Run returns. Step.Remove then removes
// <parent>/<id> from every cgroup hierarchy of the machine (the runtime
// creates it in all of them).
//
// Group reads the totals of a cgroup that others fill, such as <parent>
// itself: the scheduler's view of every running step at once.
//
// The cgroup files are read with github.com/containerd/cgroups/v3. This
// package imports no other Kiln package.
package cgroup
