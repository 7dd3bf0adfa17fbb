package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kiln-build/kiln/internal/testutil"
)

// env is a running registry and kilnd.
type env struct {
	dir      string
	kiln     string
	kilnd    string
	buildctl string // BuildKit's client (bin/tools/buildctl), "" when not built
	// buildkitd is BuildKit's daemon (bin/tools/buildkitd), "" when not
	// built: the buildctl case also runs buildctl on it.
	buildkitd string
	registry  string // host:port
	regCmd    *exec.Cmd
	daemon    *exec.Cmd
	sock      string
	root      string
	maxPeak   int64 // highest VmHWM of the daemons stopped so far
	// extraConfig is added to the kilnd.toml of daemons started from now
	// on (the shared case's cache settings); workerConfig to their
	// [worker.oci] (the cpu case's max-parallelism).
	extraConfig, workerConfig string
	// debugConfig is the [debug] table of every kilnd (-debug-address).
	debugConfig string
	// memoryFraction is the share of the machine's memory each step of
	// the memory case allocates (-memory-fraction).
	memoryFraction float64
	// progress shows every build's plain progress on stderr (-progress).
	progress bool
	// cpuLog is the CPU time kilnd and the processes it ran (runtime,
	// containers) used in each build so far.
	cpuLog []time.Duration
	// clientCPU is the CPU time the last client command (kiln build or
	// buildctl build) used itself.
	clientCPU time.Duration
}

func setup(dir, debugAddr string) (*env, error) {
	e := &env{dir: dir}
	if debugAddr != "" {
		e.debugConfig = fmt.Sprintf("[debug]\naddress = %q\n", debugAddr)
	}
	bin := filepath.Join(dir, "bin")
	fmt.Fprintln(os.Stderr, "bench: building kilnd and kiln")
	for _, c := range []string{"kilnd", "kiln"} {
		if err := command(context.Background(), "go", "build", "-o", filepath.Join(bin, c), "./cmd/"+c); err != nil {
			return nil, err
		}
	}
	e.kiln, e.kilnd = filepath.Join(bin, "kiln"), filepath.Join(bin, "kilnd")
	for name, dst := range map[string]*string{"buildctl": &e.buildctl, "buildkitd": &e.buildkitd} {
		if p, err := filepath.Abs(filepath.Join("bin", "tools", name)); err == nil {
			if _, err := os.Stat(p); err == nil {
				*dst = p
			}
		}
	}
	if err := e.startRegistry(); err != nil {
		return nil, err
	}
	if err := e.startDaemon(filepath.Join(dir, "root")); err != nil {
		e.stop()
		return nil, err
	}
	return e, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (e *env) startRegistry() error {
	port, err := freePort()
	if err != nil {
		return err
	}
	e.registry = fmt.Sprintf("127.0.0.1:%d", port)
	cfg := filepath.Join(e.dir, "registry.yml")
	data := fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(e.dir, "registry"), e.registry)
	if err := os.WriteFile(cfg, []byte(data), 0o644); err != nil {
		return err
	}
	e.regCmd = exec.Command("docker-registry", "serve", cfg)
	e.regCmd.Stdout, e.regCmd.Stderr = nil, nil
	if err := e.regCmd.Start(); err != nil {
		return fmt.Errorf("start docker-registry (apt-get install docker-registry): %w", err)
	}
	if err := waitTCP(e.registry); err != nil {
		return err
	}
	bb, err := testutil.BusyboxBinary("amd64")
	if err != nil {
		return err
	}
	img, err := testutil.NewBusyboxImage(bb, testutil.HostPlatform())
	if err != nil {
		return err
	}
	ref, err := name.ParseReference(e.registry+"/library/busybox:latest", name.Insecure)
	if err != nil {
		return err
	}
	return remote.Write(ref, img)
}

func waitTCP(addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("nothing listens on %s", addr)
}

// startDaemon starts kilnd on root with docker.io mirrored to the local
// registry.
func (e *env) startDaemon(root string) error {
	e.root = root
	e.sock = filepath.Join(e.dir, fmt.Sprintf("kilnd-%d.sock", time.Now().UnixNano()))
	cfg := filepath.Join(e.dir, "kilnd.toml")
	// The [worker.oci] defaults: steps start by measured pressure.
	data := fmt.Sprintf("root = %q\n[grpc]\naddress = [\"unix://%s\"]\n[worker.oci]\n%s[registry.\"docker.io\"]\nmirrors = [%q]\n[registry.%q]\nhttp = true\n",
		root, e.sock, e.workerConfig, e.registry, e.registry)
	data += e.extraConfig + e.debugConfig
	if err := os.WriteFile(cfg, []byte(data), 0o644); err != nil {
		return err
	}
	e.daemon = exec.Command(e.kilnd, "--config", cfg)
	logf, err := os.Create(filepath.Join(e.dir, "kilnd.log"))
	if err != nil {
		return err
	}
	e.daemon.Stdout, e.daemon.Stderr = logf, logf
	if err := e.daemon.Start(); err != nil {
		return err
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("unix", e.sock); err == nil {
			c.Close()
			time.Sleep(200 * time.Millisecond) // let it settle before measuring idle memory
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("kilnd did not start; see %s", logf.Name())
}

func (e *env) stopDaemon() {
	if e.daemon != nil && e.daemon.Process != nil {
		if p, err := e.status("VmHWM"); err == nil && p > e.maxPeak {
			e.maxPeak = p
		}
		_ = e.daemon.Process.Signal(syscall.SIGTERM)
		_ = e.daemon.Wait()
		e.daemon = nil
	}
}

// restart starts a fresh daemon on a new, empty root (a cold cache).
func (e *env) restart() error {
	e.stopDaemon()
	old := e.root
	if err := e.startDaemon(filepath.Join(e.dir, fmt.Sprintf("root-%d", time.Now().UnixNano()))); err != nil {
		return err
	}
	if old != "" {
		go os.RemoveAll(old)
	}
	return nil
}

func (e *env) stop() {
	e.stopDaemon()
	if e.regCmd != nil && e.regCmd.Process != nil {
		_ = e.regCmd.Process.Kill()
		_ = e.regCmd.Wait()
	}
}

// build runs kiln build with args in dir.
func (e *env) build(args ...string) (err error) {
	before := e.cpuTime()
	defer func() {
		if err == nil {
			e.cpuLog = append(e.cpuLog, e.cpuTime()-before)
		}
	}()
	if e.progress {
		full := append([]string{"--addr", "unix://" + e.sock, "build", "--progress", "plain"}, args...)
		cmd := exec.Command(e.kiln, full...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		return cmd.Run()
	}
	full := append([]string{"--addr", "unix://" + e.sock, "build", "--progress", "quiet"}, args...)
	return e.client(e.kiln, full...)
}

// client runs a client command and keeps the CPU time it used in
// clientCPU.
func (e *env) client(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	err := runCmd(cmd)
	if cmd.ProcessState != nil {
		e.clientCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	return err
}

// status reads a field of /proc/<kilnd>/status in bytes.
func (e *env) status(field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", e.daemon.Process.Pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			fs := strings.Fields(v)
			n, err := strconv.ParseInt(fs[0], 10, 64)
			return n * 1024, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc status", field)
}

func (e *env) rss() (int64, error) { return e.status("VmRSS") }
func (e *env) peakRSS() (int64, error) {
	p, err := e.status("VmHWM")
	if p < e.maxPeak {
		p = e.maxPeak
	}
	return p, err
}

// cpuTime is the CPU time of kilnd and of its reaped children (the OCI
// runtime and the containers), from /proc/<pid>/stat.
func (e *env) cpuTime() time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", e.daemon.Process.Pid))
	if err != nil {
		return 0
	}
	// The command name may hold spaces: fields count from after ")".
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	var ticks int64
	for _, i := range []int{11, 12, 13, 14} { // utime stime cutime cstime
		n, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond // USER_HZ = 100
}

// cpuMedian is the median CPU time of the last n builds.
func (e *env) cpuMedian(n int) time.Duration {
	if len(e.cpuLog) < n {
		return 0
	}
	return median(e.cpuLog[len(e.cpuLog)-n:])
}
