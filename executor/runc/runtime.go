package runc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/executor"
	"github.com/kiln-build/kiln/internal/proclog"
)

// The runtime's command line is small (run, kill, delete, list), so it is
// called directly rather than through github.com/containerd/go-runc, whose
// package-level process monitor does not fit Kiln's no-globals rule.

const (
	// killInterval is how often a cancelled container is sent SIGKILL
	// until its runtime process exits (the first kill may come before the
	// container exists).
	killInterval = 50 * time.Millisecond
	// killTimeout is how long to keep trying before the runtime process
	// itself is killed.
	killTimeout = 10 * time.Second
	// commandTimeout bounds the short runtime commands (kill, delete, list).
	commandTimeout = 10 * time.Second
)

// runtime calls one OCI runtime binary with one state directory.
type runtime struct {
	bin string
	// sealed is crun's binary copied into a sealed memfd, which the
	// runtime is executed from (see sealedCopy); nil: bin is. It is
	// never closed explicitly: a command made before Close may still
	// start after it, and a closed descriptor's number can be reused by
	// another file. Its finalizer closes it with the runtime.
	sealed *os.File
	name   string // "runc" or "crun"
	state  string
	log    *slog.Logger // the runtime's stderr, a record per command (proclog)
	// hideCgroupV2 starts the runtime in a private mount namespace without
	// /sys/fs/cgroup/unified (crun on a hybrid host, see the package doc).
	hideCgroupV2 bool
}

func newRuntime(bin, state string, log *slog.Logger) (*runtime, error) {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("OCI runtime %s --version: %w", bin, err)
	}
	r := &runtime{bin: bin, name: filepath.Base(bin), state: state, log: log}
	switch first, _, _ := strings.Cut(string(out), "\n"); {
	case strings.HasPrefix(first, "crun"):
		r.name = "crun"
		r.hideCgroupV2 = hybridWithV2Controllers()
		// Without the copy every crun call copies itself, as before.
		r.sealed, _ = sealedCopy(bin)
	case strings.HasPrefix(first, "runc"):
		r.name = "runc"
	}
	return r, nil
}

func (r *runtime) command(ctx context.Context, args ...string) *exec.Cmd {
	if r.sealed == nil {
		return exec.CommandContext(ctx, r.bin, append([]string{"--root", r.state}, args...)...)
	}
	// The child resolves the path before the copy's descriptor closes
	// on exec (fexecve(3) works the same way).
	cmd := exec.CommandContext(ctx, fmt.Sprintf("/proc/self/fd/%d", r.sealed.Fd()), append([]string{"--root", r.state}, args...)...)
	cmd.Args[0] = r.bin
	return cmd
}

// sealedCopy copies the runtime binary at bin into a memfd sealed
// against every change, from which crun is then executed.
//
// A container's processes can reach the runtime's binary through
// /proc/<pid>/exe while the runtime sets them up, and a binary they could
// write would be a way out (CVE-2019-5736). crun therefore first copies
// itself on every call (a read-only bind mount of its binary, else a
// sealed memfd) and executes the copy: a second exec and dynamic link
// of its libraries, about 5 ms of each container start on this
// project's machines. crun skips that step when it already runs from a
// memfd sealed with exactly F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_GROW and
// F_SEAL_WRITE (runc's cloned_binary rule), which this copy is: the
// protection is the same, made once per daemon instead of per call.
func sealedCopy(bin string) (*os.File, error) {
	src, err := os.Open(bin)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	fd, err := unix.MemfdCreate(filepath.Base(bin), unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd for %s: %w", bin, err)
	}
	f := os.NewFile(uintptr(fd), "memfd:"+filepath.Base(bin))
	if _, err := io.Copy(f, src); err != nil {
		f.Close()
		return nil, fmt.Errorf("copy %s: %w", bin, err)
	}
	const seals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		f.Close()
		return nil, fmt.Errorf("seal the copy of %s: %w", bin, err)
	}
	return f, nil
}

func (r *runtime) start(cmd *exec.Cmd) error {
	if r.hideCgroupV2 {
		return startWithoutCgroupV2(cmd)
	}
	return cmd.Start()
}

// output runs a short runtime command and returns its stdout.
func (r *runtime) output(ctx context.Context, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	cmd := r.command(ctx, args...)
	var stdout bytes.Buffer
	stderr := proclog.NewStderr()
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	if err := r.start(cmd); err != nil {
		return nil, fmt.Errorf("%s %s: %w", r.name, args[0], err)
	}
	err := cmd.Wait()
	// The runtime's stderr is a record of its own in the daemon's log;
	// the error carries one line of it.
	stderr.Log(ctx, r.log, r.name, cmd.Args[1:], err, nil)
	if err != nil {
		if b := stderr.Brief(); b != "" {
			return nil, fmt.Errorf("%s %s: %w: %s", r.name, args[0], err, b)
		}
		return nil, fmt.Errorf("%s %s: %w", r.name, args[0], err)
	}
	return stdout.Bytes(), nil
}

// runResult is what run measured of a container.
type runResult struct {
	wall time.Duration
	io   procIO
}

// exited is the runtime process's end: its I/O accounting, read before
// it was reaped, and Wait's error.
type exited struct {
	io  procIO
	err error
}

// run runs the container in the foreground and waits for it; see
// executor.Executor.Run for the errors. With cloneInto set (a cgroup v2
// directory), the runtime process starts in that cgroup.
func (r *runtime) run(ctx context.Context, id string, b *bundle, p executor.Process, cloneInto string) (runResult, error) {
	var res runResult
	if ctx.Err() != nil {
		return res, fmt.Errorf("process %q: %w", strings.Join(p.Args, " "), context.Cause(ctx))
	}
	// The command gets no context: cancelling must go through `kill`, not
	// by killing the runtime process, which would orphan the container.
	cmd := r.command(context.Background(), "--log", b.logPath(), "--log-format", "json", "run", "--bundle", b.dir, id)
	cmd.Stdout, cmd.Stderr = p.Stdout, p.Stderr
	stdin, err := stdinFor(cmd, p.Stdin)
	if err != nil {
		return res, err
	}
	defer stdin.Close()
	// Everything in the container dies with its pid 1, so the output pipes
	// close right after; this only guards against a stuck copy.
	cmd.WaitDelay = 5 * time.Second
	if cloneInto != "" {
		cg, err := os.OpenFile(cloneInto, os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return res, fmt.Errorf("open the container's cgroup: %w", err)
		}
		defer cg.Close()
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())}
	}
	start := time.Now()
	if err := r.start(cmd); err != nil {
		return res, fmt.Errorf("start %s: %w", r.name, err)
	}
	stdin.started()
	waitc := make(chan exited, 1)
	go func() {
		// The runtime has reaped the container's processes when it exits,
		// so its I/O accounting holds theirs: read it before reaping it.
		var x exited
		if waitExited(cmd.Process.Pid) == nil {
			x.io = readProcIO(cmd.Process.Pid)
		}
		x.err = cmd.Wait()
		waitc <- x
	}()

	var x exited
	canceled := false
	select {
	case x = <-waitc:
	case <-ctx.Done():
		canceled = true
		x = r.killUntilExit(id, cmd, waitc)
	}
	res = runResult{wall: time.Since(start), io: x.io}
	werr := x.err
	derr := r.deleteIfExists(id)
	if canceled {
		return res, errors.Join(fmt.Errorf("process %q: %w", strings.Join(p.Args, " "), context.Cause(ctx)), derr)
	}
	if werr == nil {
		return res, derr
	}
	var ee *exec.ExitError
	if !errors.As(werr, &ee) {
		return res, errors.Join(fmt.Errorf("%s run: %w", r.name, werr), derr)
	}
	if msg := runtimeError(b.logPath()); msg != "" {
		if !strings.HasPrefix(msg, r.name+" ") {
			msg = r.name + " run failed: " + msg
		}
		return res, errors.Join(errors.New(msg), derr)
	}
	if ee.ExitCode() < 0 {
		return res, errors.Join(fmt.Errorf("%s run: %w", r.name, werr), derr)
	}
	return res, errors.Join(&executor.ExitError{Code: ee.ExitCode(), Args: append([]string(nil), p.Args...)}, derr)
}

// stdinPipe feeds a non-file Stdin to the runtime. os/exec would do that
// itself, but its Wait then waits for the copy, which never ends while the
// caller's reader blocks; this copy is abandoned when the process is gone.
type stdinPipe struct {
	r, w *os.File
}

func stdinFor(cmd *exec.Cmd, in io.Reader) (*stdinPipe, error) {
	if in == nil {
		return &stdinPipe{}, nil
	}
	if f, ok := in.(*os.File); ok {
		cmd.Stdin = f
		return &stdinPipe{}, nil
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("stdin pipe: %w", err)
	}
	cmd.Stdin = r
	go func() {
		_, _ = io.Copy(w, in)
		w.Close()
	}()
	return &stdinPipe{r: r, w: w}, nil
}

// started closes the child's end in the parent.
func (s *stdinPipe) started() {
	if s.r != nil {
		s.r.Close()
	}
}

// Close makes the copy fail at its next write. A read of the caller's
// reader that is blocked at that moment still finishes in the background.
func (s *stdinPipe) Close() {
	if s.r != nil {
		s.r.Close()
	}
	if s.w != nil {
		s.w.Close()
	}
}

// killUntilExit sends SIGKILL to the container until the foreground
// runtime process exits, and returns how it ended.
func (r *runtime) killUntilExit(id string, cmd *exec.Cmd, waitc <-chan exited) exited {
	deadline := time.Now().Add(killTimeout)
	for {
		// Errors are expected while the container does not exist yet or
		// has already gone; the loop ends when the runtime exits.
		_, _ = r.output(context.Background(), "kill", id, "KILL")
		select {
		case err := <-waitc:
			return err
		case <-time.After(killInterval):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			return <-waitc
		}
	}
}

// deleteIfExists removes the container's runtime state if it is still
// there (`run` normally deletes it itself).
func (r *runtime) deleteIfExists(id string) error {
	if _, err := os.Stat(filepath.Join(r.state, id)); err != nil {
		return nil
	}
	if _, err := r.output(context.Background(), "delete", "--force", id); err != nil {
		if _, serr := os.Stat(filepath.Join(r.state, id)); serr != nil {
			return nil // gone meanwhile
		}
		return fmt.Errorf("delete container %s: %w", id, err)
	}
	return nil
}

// list returns the ids of the containers in the state directory.
func (r *runtime) list(ctx context.Context) ([]string, error) {
	out, err := r.output(ctx, "list", "-q")
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(out)), nil
}

// runtimeError returns the runtime's own error from its JSON log, "" if it
// logged none (the process itself failed).
func runtimeError(logPath string) string {
	data, err := os.ReadFile(logPath)
	if err != nil {
		return ""
	}
	var msgs []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var entry struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &entry) != nil {
			continue
		}
		if entry.Level == "error" || entry.Level == "fatal" {
			msgs = append(msgs, entry.Msg)
		}
	}
	if len(msgs) == 0 {
		return ""
	}
	return msgs[len(msgs)-1]
}
