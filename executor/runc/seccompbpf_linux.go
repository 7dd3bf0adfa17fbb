package runc

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/kiln-build/kiln/core/sandbox"
	"github.com/kiln-build/kiln/executor"
)

// Compiling Docker's seccomp profile into a BPF program costs the runtime
// a good part of every container start (about 15 ms of CPU for crun, 27 ms
// for runc on this project's machines). crun accepts the compiled program
// instead of the profile: with the annotation run.oci.seccomp_bpf_data
// (the program, base64) it loads that filter and skips the compilation.
// The executor therefore lets crun compile each distinct profile once, by
// creating (never starting) a container with it, whose state directory
// then holds the program crun made (seccomp.bpf), and hands that program
// to every later container with the same profile. The filter is the one
// crun would have compiled itself: Docker's profile, unchanged. runc has
// no such input and compiles the profile every time.
const seccompBPFAnnotation = "run.oci.seccomp_bpf_data"

// seccompCache holds the programs crun compiled, by the SHA-256 of the
// profile's JSON. An empty program records a profile crun could not
// compile this way; its containers get the profile itself.
type seccompCache struct {
	mu       sync.Mutex
	programs map[[sha256.Size]byte]string
	// off hands every container the profile itself (benchmarks compare).
	off bool
}

// Warm has crun compile, in the background, the seccomp program of a
// default RUN step, which the first container would otherwise wait for:
// a daemon's first build starts its steps that much sooner. A step that
// starts meanwhile waits for the compilation rather than repeat it.
// Close stops and waits for it. Warm does nothing with runc. Call it
// after Cleanup, which must not run beside it.
func (e *Executor) Warm() {
	if e.rt.name != "crun" {
		return
	}
	spec, err := generateSpec(context.Background(), specConfig{
		id:     "seccomp-warm",
		rootfs: filepath.Join(e.dir, "seccomp-warm"),
		proc:   executor.Process{Args: []string{"/bin/true"}},
		cwd:    "/",
		userns: e.userns,
	})
	if err != nil {
		return // the first step compiles it, and reports what fails
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.warmDone, e.warmCancel = make(chan struct{}), cancel
	go func() {
		defer close(e.warmDone)
		e.precompileSeccomp(ctx, spec)
	}()
}

// precompileSeccomp replaces s's seccomp profile by the program crun
// compiled from it, compiling it first if needed. With runc, or when
// compiling fails, s keeps its profile.
func (e *Executor) precompileSeccomp(ctx context.Context, s *specs.Spec) {
	if e.rt.name != "crun" || e.seccomp.off || s.Linux == nil || s.Linux.Seccomp == nil {
		return
	}
	data, err := json.Marshal(s.Linux.Seccomp)
	if err != nil {
		return
	}
	key := sha256.Sum256(data)
	c := &e.seccomp
	c.mu.Lock()
	defer c.mu.Unlock()
	prog, ok := c.programs[key]
	if !ok {
		prog, err = e.compileSeccomp(ctx, s.Linux.Seccomp)
		if err != nil {
			prog = "" // remembered: not tried again
		}
		if c.programs == nil {
			c.programs = map[[sha256.Size]byte]string{}
		}
		c.programs[key] = prog
	}
	if prog == "" {
		return
	}
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	s.Annotations[seccompBPFAnnotation] = prog
	s.Linux.Seccomp = nil
}

// compileSeccomp has crun compile profile: it creates a container with the
// profile on an empty root filesystem, reads the program from the
// container's state and deletes the container. Nothing runs in it.
func (e *Executor) compileSeccomp(ctx context.Context, profile *specs.LinuxSeccomp) (string, error) {
	id, err := newID()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(e.dir, "seccomp-"+id)
	b, err := newBundle(dir)
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir) // crun made mount points in the (never mounted) rootfs
	acct, err := e.newAccount(id)
	if err != nil {
		return "", err
	}
	defer acct.remove()
	s, err := generateSpec(ctx, specConfig{
		id: id, rootfs: b.rootfs(), cwd: "/", cgroupsPath: acct.cgroupsPath,
		// crun checks that the command exists when it creates the
		// container; /proc/self/exe always does.
		proc: executor.Process{Args: []string{"/proc/self/exe"}, Hostname: e.cfg.hostname, Net: sandbox.NetNone},
	})
	if err != nil {
		return "", err
	}
	s.Linux.Seccomp = profile
	if err := b.writeSpec(s); err != nil {
		return "", err
	}
	// The container's init keeps crun's standard streams open until it
	// is deleted: they must be files (/dev/null), not pipes Wait would
	// wait on.
	cctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	cmd := e.rt.command(cctx, "--log", b.logPath(), "--log-format", "json", "create", "--bundle", b.dir, id)
	err = e.rt.start(cmd)
	if err == nil {
		err = cmd.Wait()
	}
	if err != nil {
		_ = e.rt.deleteIfExists(id)
		if msg := runtimeError(b.logPath()); msg != "" {
			err = fmt.Errorf("%w: %s", err, msg)
		}
		return "", fmt.Errorf("compile the seccomp profile: %w", err)
	}
	prog, rerr := os.ReadFile(filepath.Join(e.rt.state, id, "seccomp.bpf"))
	if _, err := e.rt.output(context.WithoutCancel(ctx), "delete", "--force", id); err != nil {
		return "", fmt.Errorf("delete the seccomp compiler container: %w", err)
	}
	if rerr != nil {
		return "", fmt.Errorf("read the compiled seccomp program: %w", rerr)
	}
	if len(prog) == 0 || len(prog)%8 != 0 {
		return "", fmt.Errorf("compiled seccomp program has %d bytes, not whole instructions", len(prog))
	}
	return base64.StdEncoding.EncodeToString(prog), nil
}
