package testutil

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BuildCommand builds github.com/kiln-build/kiln/cmd/<name> (kilnd, kiln)
// into dir and returns the binary's path. It runs the go command of the
// toolchain running the tests, from the current directory, which must be
// inside the module (as it is for any test in the repository).
func BuildCommand(dir, name string) (string, error) {
	out := filepath.Join(dir, name)
	return out, GoBuild(out, "github.com/kiln-build/kiln/cmd/"+name)
}

// GoBuild builds the package pkg into the binary out with the go command
// of the toolchain running the tests; env adds environment variables
// ("CGO_ENABLED=0").
func GoBuild(out, pkg string, env ...string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		// go test runs test binaries with GOROOT set; /usr/local/go is
		// where the project's machines keep Go.
		goBin = "/usr/local/go/bin/go"
		if r := os.Getenv("GOROOT"); r != "" {
			goBin = filepath.Join(r, "bin", "go")
		}
	}
	cmd := exec.Command(goBin, "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, stderr.String())
	}
	return nil
}

// Daemon is a kilnd process started by StartDaemon on a temporary root.
type Daemon struct {
	// Addr is the daemon's unix socket address (unix:///.../kilnd.sock).
	Addr string
	// Socket is the socket's path.
	Socket string
	// Root is the daemon's --root directory.
	Root string
	// ConfigFile is the --config file, when the daemon was given one.
	ConfigFile string

	cmd    *exec.Cmd
	stderr *SyncBuffer
	done   chan struct{}
	err    error // Wait's result, set before done closes
}

// DaemonOption configures StartDaemon.
type DaemonOption func(*daemonOptions)

type daemonOptions struct {
	config string
	args   []string
	root   string
	env    []string
}

// WithDaemonConfig writes toml to a kilnd.toml next to the root and
// passes it with --config.
func WithDaemonConfig(toml string) DaemonOption {
	return func(o *daemonOptions) { o.config = toml }
}

// WithDaemonArgs adds command-line arguments (e.g. "--addr",
// "tcp://127.0.0.1:0").
func WithDaemonArgs(args ...string) DaemonOption {
	return func(o *daemonOptions) { o.args = append(o.args, args...) }
}

// WithDaemonRoot uses root instead of a fresh temporary directory.
func WithDaemonRoot(root string) DaemonOption {
	return func(o *daemonOptions) { o.root = root }
}

// WithDaemonEnv adds environment variables ("KEY=value").
func WithDaemonEnv(env ...string) DaemonOption {
	return func(o *daemonOptions) { o.env = append(o.env, env...) }
}

// StartDaemon starts the kilnd binary with a temporary root and a unix
// socket in a short temporary directory, waits until the socket accepts
// connections, and stops the daemon (SIGTERM, then SIGKILL) when the test
// ends. It fails the test, with the daemon's stderr, when kilnd exits or
// does not come up within 30 seconds.
func StartDaemon(t testing.TB, binary string, opts ...DaemonOption) *Daemon {
	t.Helper()
	var o daemonOptions
	for _, opt := range opts {
		opt(&o)
	}
	// Unix socket paths are limited to 108 bytes; t.TempDir can be longer.
	sockDir, err := os.MkdirTemp("", "kilnd")
	if err != nil {
		t.Fatalf("socket dir: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	d := &Daemon{Socket: filepath.Join(sockDir, "kilnd.sock"), Root: o.root}
	d.Addr = "unix://" + d.Socket
	if d.Root == "" {
		d.Root = filepath.Join(t.TempDir(), "root")
	}
	args := []string{"--root", d.Root, "--addr", d.Addr}
	if o.config != "" {
		d.ConfigFile = filepath.Join(t.TempDir(), "kilnd.toml")
		if err := os.WriteFile(d.ConfigFile, []byte(o.config), 0o600); err != nil {
			t.Fatalf("write config: %v", err)
		}
		args = append(args, "--config", d.ConfigFile)
	}
	args = append(args, o.args...)
	if err := d.start(binary, args, o.env); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Stop(15 * time.Second); err != nil {
			t.Errorf("stop kilnd: %v\nstderr:\n%s", err, d.Stderr())
		}
	})
	if err := d.waitReady(30 * time.Second); err != nil {
		t.Fatalf("%v\nkilnd stderr:\n%s", err, d.Stderr())
	}
	return d
}

func (d *Daemon) start(binary string, args, env []string) error {
	d.cmd = exec.Command(binary, args...)
	d.cmd.Env = append(os.Environ(), env...)
	d.stderr = &SyncBuffer{}
	d.cmd.Stdout = d.stderr
	d.cmd.Stderr = d.stderr
	// Its own process group, so a test's Ctrl-C does not reach it first.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		return fmt.Errorf("start kilnd: %w", err)
	}
	d.done = make(chan struct{})
	go func() {
		d.err = d.cmd.Wait()
		close(d.done)
	}()
	return nil
}

func (d *Daemon) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-d.done:
			return fmt.Errorf("kilnd exited before it was ready: %v", d.err)
		default:
		}
		if c, err := net.DialTimeout("unix", d.Socket, time.Second); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("kilnd did not listen on %s within %s", d.Socket, timeout)
}

// Pid returns the daemon's process id.
func (d *Daemon) Pid() int { return d.cmd.Process.Pid }

// Signal sends sig to the daemon.
func (d *Daemon) Signal(sig os.Signal) error {
	select {
	case <-d.done:
		return errors.New("kilnd has exited")
	default:
	}
	return d.cmd.Process.Signal(sig)
}

// Wait waits up to timeout for the daemon to exit and returns its exit
// code (-1 when it was killed by a signal).
func (d *Daemon) Wait(timeout time.Duration) (int, error) {
	select {
	case <-d.done:
	case <-time.After(timeout):
		return 0, fmt.Errorf("kilnd (pid %d) did not exit within %s", d.Pid(), timeout)
	}
	var ee *exec.ExitError
	if errors.As(d.err, &ee) {
		return ee.ExitCode(), nil
	}
	if d.err != nil {
		return 0, d.err
	}
	return 0, nil
}

// Exited reports whether the daemon has exited.
func (d *Daemon) Exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM and waits up to timeout for a clean exit (code 0);
// after that it kills the daemon and reports an error. Stopping a daemon
// that has exited returns nil.
func (d *Daemon) Stop(timeout time.Duration) error {
	if d.Exited() {
		return nil
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	code, err := d.Wait(timeout)
	if err != nil {
		_ = d.cmd.Process.Kill()
		<-d.done
		return err
	}
	if code != 0 {
		return fmt.Errorf("kilnd exited with code %d after SIGTERM", code)
	}
	return nil
}

// Stderr returns everything the daemon wrote so far (stdout and stderr).
func (d *Daemon) Stderr() string { return d.stderr.String() }

// RunKilnd runs the kilnd binary to completion (for --validate and
// failing starts) and returns its exit code, stdout and stderr. It gives
// up after timeout.
func RunKilnd(ctx context.Context, binary string, timeout time.Duration, args ...string) (code int, stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ctx.Err() == nil {
		return ee.ExitCode(), out.String(), errb.String(), nil
	}
	if err != nil {
		return 0, out.String(), errb.String(), fmt.Errorf("run kilnd %s: %w", strings.Join(args, " "), err)
	}
	return 0, out.String(), errb.String(), nil
}

// SyncBuffer is a bytes.Buffer safe for a writer (a process's output
// copier) and readers (the test).
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
