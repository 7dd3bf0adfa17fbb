package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// buildctlCase measures BuildKit's client on kilnd (the compatibility
// path: BuildKit's session protocol, Solve and Status) against kiln build
// on the same daemon, for the hello and context cases. The two clients run
// alternately, run after run, so that load from elsewhere on the machine
// falls on both alike; each row reports buildctl's median and its overhead
// over kiln build's (target: under 10%).
func buildctlCase(e *env, runs int) ([]row, error) {
	if e.buildctl == "" {
		return nil, fmt.Errorf("buildctl is not installed (hack/bench.sh builds it into bin/tools)")
	}
	hello := filepath.Join(e.dir, "hello")
	if err := writeDockerfile(hello, "FROM busybox\nRUN echo \"Hello, Kiln!\" > /hello.txt\nCMD [\"cat\",\"/hello.txt\"]\n"); err != nil {
		return nil, err
	}
	ctxDir := filepath.Join(e.dir, "context")
	if _, err := os.Stat(filepath.Join(ctxDir, "Dockerfile")); err != nil {
		if err := makeContext(ctxDir); err != nil {
			return nil, err
		}
		if err := writeDockerfile(ctxDir, "FROM busybox\nCOPY . /src\nRUN find /src | wc -l\n"); err != nil {
			return nil, err
		}
	}
	kilnHello := func() error { return e.build("-t", "my-hello-app", hello) }
	bkHello := func() error { return e.bkBuild(hello, "--output", "type=image,name=my-hello-app") }
	kilnCtx := func() error { return e.build(ctxDir) }
	bkCtx := func() error { return e.bkBuild(ctxDir) }
	restart := func(int) error { return e.restart() }
	small := filepath.Join(ctxDir, "src", "d11", "f0011.txt")
	change := func(i int) error {
		return os.WriteFile(small, []byte(fmt.Sprintf("changed %d %d\n", i, time.Now().UnixNano())), 0o644)
	}

	var rows []row
	for _, m := range []struct {
		name   string
		before func(int) error
		kiln   func() error
		bk     func() error
	}{
		{"hello cold", restart, kilnHello, bkHello},
		{"hello no-change", nil, kilnHello, bkHello},
		{"context cold", restart, kilnCtx, bkCtx},
		{"context no-change", nil, kilnCtx, bkCtx},
		{"context one-file change", change, kilnCtx, bkCtx},
	} {
		// One untimed round first: the no-change rows measure builds
		// whose context copies exist for both clients.
		if m.before == nil {
			if err := m.kiln(); err != nil {
				return nil, err
			}
			if err := m.bk(); err != nil {
				return nil, err
			}
		}
		k, b, err := timePair(e, runs, m.before, m.kiln, m.bk)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.name, err)
		}
		over := 100 * (float64(b.wall) - float64(k.wall)) / float64(k.wall)
		// Where the difference lies: kilnd's CPU per build, and the
		// client's own.
		rows = append(rows, row{name: m.name + " (buildctl)", kiln: b.wall,
			note: fmt.Sprintf("(kiln build %s; buildctl %+.1f%%; target < +10%%; kilnd CPU %s vs %s, client CPU %s vs %s)",
				secs(k.wall), over, ms(b.daemonCPU), ms(k.daemonCPU), ms(b.clientCPU), ms(k.clientCPU))})
	}
	return rows, nil
}

// pairStats are one client's medians in a timePair: wall time, the CPU
// kilnd (with the runtime and containers) used, and the client's own CPU.
type pairStats struct {
	wall, daemonCPU, clientCPU time.Duration
}

// timePair runs a and b alternately n times each, calling before (untimed)
// ahead of every run, and returns both clients' medians.
func timePair(e *env, n int, before func(int) error, a, b func() error) (pairStats, pairStats, error) {
	var walls, daemon, client [2][]time.Duration
	for i := 0; i < 2*n; i++ {
		if before != nil {
			if err := before(i); err != nil {
				return pairStats{}, pairStats{}, err
			}
		}
		f, k := a, i%2
		if k == 1 {
			f = b
		}
		cpu := e.cpuTime()
		start := time.Now()
		if err := f(); err != nil {
			return pairStats{}, pairStats{}, err
		}
		walls[k] = append(walls[k], time.Since(start))
		daemon[k] = append(daemon[k], e.cpuTime()-cpu)
		client[k] = append(client[k], e.clientCPU)
	}
	st := func(k int) pairStats { return pairStats{median(walls[k]), median(daemon[k]), median(client[k])} }
	return st(0), st(1), nil
}

// bkBuild runs buildctl build with the dockerfile.v0 frontend on dir.
func (e *env) bkBuild(dir string, args ...string) error {
	full := append([]string{"--addr", "unix://" + e.sock, "build", "--progress", "quiet", "--frontend", "dockerfile.v0",
		"--local", "context=" + dir, "--local", "dockerfile=" + dir}, args...)
	return e.client(e.buildctl, full...)
}
