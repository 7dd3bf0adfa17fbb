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
	registry string // host:port
	regCmd   *exec.Cmd
	daemon   *exec.Cmd
	sock     string
	root     string
	maxPeak  int64 // highest VmHWM of the daemons stopped so far
	// extraConfig is added to the kilnd.toml of daemons started from now
	// on (the shared case's cache settings).
	extraConfig string
}

func setup(dir string) (*env, error) {
	e := &env{dir: dir}
	bin := filepath.Join(dir, "bin")
	fmt.Fprintln(os.Stderr, "bench: building kilnd and kiln")
	for _, c := range []string{"kilnd", "kiln"} {
		if err := command(context.Background(), "go", "build", "-o", filepath.Join(bin, c), "./cmd/"+c); err != nil {
			return nil, err
		}
	}
	e.kiln, e.kilnd = filepath.Join(bin, "kiln"), filepath.Join(bin, "kilnd")
	if p, err := filepath.Abs(filepath.Join("bin", "tools", "buildctl")); err == nil {
		if _, err := os.Stat(p); err == nil {
			e.buildctl = p
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
	// max-parallelism = 4: BuildKit, measured with its default (no
	// limit), ran the parallel case's four stages at once; kilnd's default
	// is the number of CPUs (2 here).
	data := fmt.Sprintf("root = %q\n[grpc]\naddress = [\"unix://%s\"]\n[worker.oci]\nmax-parallelism = 4\n[registry.\"docker.io\"]\nmirrors = [%q]\n[registry.%q]\nhttp = true\n",
		root, e.sock, e.registry, e.registry)
	data += e.extraConfig
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
func (e *env) build(args ...string) error {
	full := append([]string{"--addr", "unix://" + e.sock, "build", "--progress", "quiet"}, args...)
	return command(context.Background(), e.kiln, full...)
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
