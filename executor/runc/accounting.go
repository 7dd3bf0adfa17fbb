package runc

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/executor"
	"github.com/kiln-build/kiln/internal/cgroup"
)

// How a container is measured (executor.Usage):
//
//   - CPU time and peak memory come from the container's cgroup. Each
//     container gets <parent>/<id> (internal/cgroup) and the runtime is
//     told to use <parent>/<id>/ctr: the runtime removes its own cgroup as
//     the container ends, and the kernel keeps a removed child's usage in
//     its parent.
//   - I/O bytes come from the kernel's per-process accounting
//     (/proc/<pid>/io) of the runtime process, read after it exited and
//     before it is reaped: a process's counters include those of the
//     children it reaped, and the runtime reaps the container's init,
//     which reaps everything else in the container's pid namespace. On
//     cgroup v1 the block I/O controller's counters stay empty unless a
//     throttling rule is set and are dropped with the cgroup, so this one
//     source serves both versions.
//   - An OOM kill is read from memory.events on cgroup v2. cgroup v1
//     counts it only in the runtime's own cgroup, which is gone by then:
//     a container that ends with SIGKILL (exit code 137) while the
//     kernel's oom_kill counter (/proc/vmstat) went up is taken to have
//     been OOM-killed.

// defaultCgroupParent is "kiln/<first 12 hex digits of sha256(dir)>".
func defaultCgroupParent(dir string) string {
	sum := sha256.Sum256([]byte(dir))
	return "kiln/" + hex.EncodeToString(sum[:6])
}

// setupCgroups picks the cgroup hierarchy containers are measured in and
// creates their parent. A machine where that is not possible runs
// containers unmeasured, as before; AccountingError says why.
func (e *Executor) setupCgroups() error {
	if e.cfg.cgroupParent == "" {
		e.cgErr = errors.New("containers have no cgroup parent")
		return nil
	}
	h := e.cfg.cgroups
	if h == nil {
		var err error
		if h, err = cgroup.Detect(); err != nil {
			e.cgErr = err
			return nil
		}
	}
	if h.Mode() == cgroup.None {
		e.cgErr = errors.New("no cgroup v2 controllers and no cgroup v1 cpuacct and memory hierarchies")
		return nil
	}
	parent, err := h.Parent(e.cfg.cgroupParent)
	if err != nil {
		e.cgErr = err
		return nil
	}
	e.cg, e.cgParent = h, parent
	return nil
}

// Steps returns the cgroup whose children are the running containers
// (for a scheduler to measure them), nil when containers are not
// measured.
func (e *Executor) Steps() *cgroup.Group { return e.cgParent }

// Accounting says how containers are measured: the cgroup mode, or why
// they are not (CPU time and peak memory are then unknown).
func (e *Executor) Accounting() (cgroup.Mode, error) {
	if e.cg == nil {
		return cgroup.None, e.cgErr
	}
	return e.cg.Mode(), nil
}

// account measures one container.
type account struct {
	step        *cgroup.Step // nil when containers are not measured
	cgroupsPath string       // for the spec; "" lets the runtime pick
	cloneInto   string       // cgroup v2 directory to start the runtime in
	oomBefore   int64        // /proc/vmstat oom_kill at the start (cgroup v1)
}

func (e *Executor) newAccount(id string) (*account, error) {
	a := &account{}
	if e.cfg.cgroupParent == "" {
		return a, nil
	}
	if e.cg == nil {
		a.cgroupsPath = path.Join("/", e.cfg.cgroupParent, id)
		return a, nil
	}
	step, err := e.cg.NewStep(e.cfg.cgroupParent, id)
	if err != nil {
		return nil, fmt.Errorf("create the container's cgroup: %w", err)
	}
	a.step, a.cgroupsPath = step, step.RuntimePath()
	if e.rt.hideCgroupV2 {
		// crun sees no v2 hierarchy on this hybrid host, so it leaves
		// the container where it was started.
		a.cloneInto = step.UnifiedDir()
	}
	if e.cg.Mode() == cgroup.V1 {
		a.oomBefore = vmstatOOMKills()
	}
	return a, nil
}

// finish fills usage (when set) from what was measured and marks an exit
// caused by the OOM killer in runErr, which it returns.
func (a *account) finish(res runResult, runErr error, usage *executor.Usage) error {
	u := executor.Usage{Wall: res.wall, IORead: res.io.read, IOWrite: res.io.write}
	var ee *executor.ExitError
	exit := errors.As(runErr, &ee)
	if a.step != nil {
		st, err := a.step.Stat()
		if err != nil {
			return errors.Join(runErr, err)
		}
		u.CPU, u.MemoryPeak = st.CPU, st.MemoryPeak
		switch {
		case st.OOMKnown:
			u.OOMKilled = st.OOMKills > 0
		case exit && ee.Code == 128+int(unix.SIGKILL):
			u.OOMKilled = vmstatOOMKills() > a.oomBefore
		}
	}
	if exit && u.OOMKilled {
		ee.OOMKilled, ee.MemoryPeak = true, u.MemoryPeak
		// The machine's memory, for the message; read only when it is
		// needed.
		var si unix.Sysinfo_t
		if unix.Sysinfo(&si) == nil {
			ee.MemoryTotal = int64(si.Totalram) * int64(si.Unit)
		}
	}
	if usage != nil {
		*usage = u
	}
	return runErr
}

// remove removes the container's cgroup; the container must be gone.
func (a *account) remove() error {
	if a.step == nil {
		return nil
	}
	return a.step.Remove()
}

// procIO is the storage I/O of a process and the children it reaped.
type procIO struct {
	read, write int64
}

// readProcIO reads /proc/<pid>/io; zero when it cannot.
func readProcIO(pid int) procIO {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return procIO{}
	}
	io, err := p.IO()
	if err != nil {
		return procIO{}
	}
	// Writes cancelled before they reached the disk (a file truncated or
	// removed while dirty) are not I/O.
	w := int64(io.WriteBytes) - int64(io.CancelledWriteBytes)
	return procIO{read: int64(io.ReadBytes), write: max(w, 0)}
}

// waitExited blocks until the child pid has exited, without reaping it.
func waitExited(pid int) error {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// vmstatOOMKills is the kernel's count of OOM kills since boot, -1 when
// unknown.
func vmstatOOMKills() int64 {
	data, err := os.ReadFile("/proc/vmstat")
	if err != nil {
		return -1
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("oom_kill ")); ok {
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}
