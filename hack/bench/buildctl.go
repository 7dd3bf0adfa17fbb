package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/kiln-build/kiln/internal/testutil"
)

// buildctlCase measures BuildKit's client on kilnd (the compatibility
// path: BuildKit's session protocol, Solve and Status) against kiln build
// on the same daemon, for the hello and context cases. The clients run
// alternately, run after run, so that load from elsewhere on the machine
// falls on all alike; each row reports buildctl's median and its overhead
// over kiln build's (target: under 10%). Where BuildKit's daemon is built
// (bin/tools/buildkitd), the warm rows also time buildctl on it: what a
// BuildKit user has before switching, with the same client.
func buildctlCase(e *env, runs int) ([]row, error) {
	if e.buildctl == "" {
		return nil, fmt.Errorf("buildctl is not installed (hack/bench.sh builds it into bin/tools)")
	}
	var bkdAddr string
	if e.buildkitd != "" {
		addr, stop, err := e.startBuildkitd()
		if err != nil {
			return nil, err
		}
		defer stop()
		bkdAddr = addr
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
	onBuildkitd := func(dir string, args ...string) func() error {
		if bkdAddr == "" {
			return nil
		}
		return func() error { return e.bkBuildOn(bkdAddr, dir, args...) }
	}
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
		bkd    func() error // buildctl on buildkitd; nil: not timed
	}{
		{"hello cold", restart, kilnHello, bkHello, nil},
		{"hello no-change", nil, kilnHello, bkHello, onBuildkitd(hello, "--output", "type=image,name=my-hello-app")},
		{"context cold", restart, kilnCtx, bkCtx, nil},
		{"context no-change", nil, kilnCtx, bkCtx, onBuildkitd(ctxDir)},
		{"context one-file change", change, kilnCtx, bkCtx, onBuildkitd(ctxDir)},
	} {
		clients := []func() error{m.kiln, m.bk}
		if m.bkd != nil {
			clients = append(clients, m.bkd)
		}
		// One untimed round first: the no-change rows measure builds
		// whose context copies exist for every client.
		if m.before == nil {
			for _, c := range clients {
				if err := c(); err != nil {
					return nil, err
				}
			}
		}
		st, err := timeClients(e, runs, m.before, clients...)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.name, err)
		}
		k, b := st[0], st[1]
		over := 100 * (float64(b.wall) - float64(k.wall)) / float64(k.wall)
		// Where the difference lies: kilnd's CPU per build, and the
		// client's own.
		note := fmt.Sprintf("(kiln build %s; buildctl %+.1f%%; target < +10%%; kilnd CPU %s vs %s, client CPU %s vs %s",
			secs(k.wall), over, ms(b.daemonCPU), ms(k.daemonCPU), ms(b.clientCPU), ms(k.clientCPU))
		if len(st) > 2 {
			note += fmt.Sprintf("; buildctl on buildkitd %s, client CPU %s", secs(st[2].wall), ms(st[2].clientCPU))
		}
		rows = append(rows, row{name: m.name + " (buildctl)", kiln: b.wall, note: note + ")"})
	}
	return rows, nil
}

// clientStats are one client's medians in timeClients: wall time, the CPU
// kilnd (with the runtime and containers) used, and the client's own CPU.
type clientStats struct {
	wall, daemonCPU, clientCPU time.Duration
}

// timeClients runs the clients in turn n times each, calling before
// (untimed) ahead of every run, and returns each client's medians. The
// daemon CPU is kilnd's.
func timeClients(e *env, n int, before func(int) error, clients ...func() error) ([]clientStats, error) {
	walls := make([][]time.Duration, len(clients))
	daemon := make([][]time.Duration, len(clients))
	client := make([][]time.Duration, len(clients))
	for i := 0; i < len(clients)*n; i++ {
		if before != nil {
			if err := before(i); err != nil {
				return nil, err
			}
		}
		k := i % len(clients)
		cpu := e.cpuTime()
		start := time.Now()
		if err := clients[k](); err != nil {
			return nil, err
		}
		walls[k] = append(walls[k], time.Since(start))
		daemon[k] = append(daemon[k], e.cpuTime()-cpu)
		client[k] = append(client[k], e.clientCPU)
	}
	st := make([]clientStats, len(clients))
	for k := range clients {
		st[k] = clientStats{median(walls[k]), median(daemon[k]), median(client[k])}
	}
	return st, nil
}

// bkBuild runs buildctl build with the dockerfile.v0 frontend on dir.
func (e *env) bkBuild(dir string, args ...string) error {
	return e.bkBuildOn("unix://"+e.sock, dir, args...)
}

// bkBuildOn runs buildctl build on the daemon at addr.
func (e *env) bkBuildOn(addr, dir string, args ...string) error {
	full := append([]string{"--addr", addr, "build", "--progress", "quiet", "--frontend", "dockerfile.v0",
		"--local", "context=" + dir, "--local", "dockerfile=" + dir}, args...)
	return e.client(e.buildctl, full...)
}

// startBuildkitd starts BuildKit's daemon on a fresh root with docker.io
// mirrored to the local registry (as hack/compat.sh does), and returns its
// address and how to stop it.
func (e *env) startBuildkitd() (string, func(), error) {
	dir := filepath.Join(e.dir, "buildkitd")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, err
	}
	addr := "unix://" + filepath.Join(dir, "buildkitd.sock")
	cfg := fmt.Sprintf("root = %q\n[grpc]\naddress = [%q]\n[worker.oci]\nenabled = true\nsnapshotter = \"overlayfs\"\n[worker.containerd]\nenabled = false\n[registry.\"docker.io\"]\nmirrors = [%q]\n[registry.%q]\nhttp = true\ninsecure = true\n",
		filepath.Join(dir, "root"), addr, e.registry, e.registry)
	if err := os.WriteFile(filepath.Join(dir, "buildkitd.toml"), []byte(cfg), 0o644); err != nil {
		return "", nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "buildkitd.log"))
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(e.buildkitd, "--config", filepath.Join(dir, "buildkitd.toml"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return "", nil, err
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		logf.Close()
		// buildkitd may leave overlay mounts under its root.
		testutil.UnmountUnder(filepath.Join(dir, "root"))
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if exec.Command(e.buildctl, "--addr", addr, "debug", "workers").Run() == nil {
			return addr, stop, nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	stop()
	return "", nil, fmt.Errorf("buildkitd did not start; see %s", logf.Name())
}
