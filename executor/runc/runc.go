package runc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/core/sandbox"
	"github.com/kiln-build/kiln/executor"
	"github.com/kiln-build/kiln/executor/user"
	"github.com/kiln-build/kiln/internal/binfmt"
	"github.com/kiln-build/kiln/internal/cgroup"
	"github.com/kiln-build/kiln/ops"
)

// DefaultHostname is the container's hostname when the Process names none
// (BuildKit's is "buildkitsandbox").
const DefaultHostname = "kilnsandbox"

// stateDirName is the runtime's --root below <root>/executor, so that Kiln's
// containers are separate from anything else the runtime runs.
const stateDirName = "runc-state"

// idmappedDirName is the directory below <root>/executor where the
// daemon's storage is seen through the user namespace's maps, at
// <idmappedDirName>/store (WithUserNamespace). Through that view every
// file seems to belong to the steps' root, so the directory is mode 0700:
// a step's user that got out of its container cannot reach it.
const idmappedDirName = "userns"

// Executor runs processes with runc or crun. Create it with New.
type Executor struct {
	dir    string // <root>/executor
	rt     *runtime
	cfg    config
	userns *userns // WithUserNamespace; nil runs containers as host root
	// cg measures each container in a cgroup of its own below
	// cfg.cgroupParent (see accounting.go); nil when it cannot.
	cg       *cgroup.Hierarchy
	cgParent *cgroup.Group
	cgErr    error // why cg is nil
	// seccomp holds the seccomp programs crun compiled
	// (seccompbpf_linux.go).
	seccomp seccompCache
	// warmDone is closed when Warm's compilation ends, warmCancel
	// stops it; nil without one.
	warmDone   chan struct{}
	warmCancel context.CancelFunc
}

var _ executor.Executor = (*Executor)(nil)

type config struct {
	binary        string
	allowInsecure bool
	resolvConf    string
	cgroupParent  string
	// cgroupParentSet says WithCgroupParent chose cgroupParent.
	cgroupParentSet bool
	hostname        string
	uids, gids      []IDMap
	cgroups         *cgroup.Hierarchy
	// memoryLimit caps each container's memory (tests only: a step that
	// must be OOM-killed without exhausting the machine).
	memoryLimit int64
	log         *slog.Logger
}

// Option configures an Executor.
type Option func(*config)

// WithLogger is where the runtime's standard error goes, one record per
// command (the default discards it).
func WithLogger(log *slog.Logger) Option {
	return func(c *config) { c.log = log }
}

// WithRuntime selects the OCI runtime binary: "runc" (the default), "crun"
// or a path to either.
func WithRuntime(binary string) Option {
	return func(c *config) { c.binary = binary }
}

// WithInsecureAllowed lets processes run with sandbox.SecurityInsecure
// (kilnd --allow-insecure-entitlement security.insecure). Without it such a
// Run fails with errdefs.ErrPermissionDenied.
func WithInsecureAllowed(allowed bool) Option {
	return func(c *config) { c.allowInsecure = allowed }
}

// WithResolvConf sets the host file the container's /etc/resolv.conf is
// generated from (default /etc/resolv.conf).
func WithResolvConf(path string) Option {
	return func(c *config) { c.resolvConf = path }
}

// WithCgroupParent puts each container's cgroup below /<parent>/<id>
// (default "kiln/<daemon>", where <daemon> is the first 12 hex digits of
// the SHA-256 of the executor's directory: several daemons on one machine
// keep their steps apart); "" leaves cgroupsPath unset and the runtime
// picks one, and containers are not measured.
func WithCgroupParent(parent string) Option {
	return func(c *config) { c.cgroupParent, c.cgroupParentSet = parent, true }
}

// WithCgroups measures containers in the cgroup hierarchy h (the one the
// daemon's scheduler reads) instead of detecting it again.
func WithCgroups(h *cgroup.Hierarchy) Option {
	return func(c *config) { c.cgroups = h }
}

// WithDefaultHostname sets the hostname for processes that name none
// (default DefaultHostname).
func WithDefaultHostname(name string) Option {
	return func(c *config) { c.hostname = name }
}

// New returns an Executor that keeps its bundles and the runtime's state
// under <root>/executor. It checks that the runtime binary exists but does
// not start anything; call Cleanup once before the first Run after a
// restart.
func New(root string, opts ...Option) (*Executor, error) {
	cfg := config{
		binary:       "runc",
		resolvConf:   "/etc/resolv.conf",
		cgroupParent: "",
		hostname:     DefaultHostname,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if !filepath.IsAbs(root) {
		return nil, errdefs.Invalidf("executor root %q is not an absolute path", root)
	}
	bin, err := exec.LookPath(cfg.binary)
	if err != nil {
		return nil, errdefs.WithClass(errdefs.ErrFailedPrecondition, fmt.Errorf("OCI runtime %q: %w", cfg.binary, err))
	}
	dir := filepath.Join(root, "executor")
	if !cfg.cgroupParentSet {
		cfg.cgroupParent = defaultCgroupParent(dir)
	}
	if err := os.MkdirAll(filepath.Join(dir, stateDirName), 0o700); err != nil {
		return nil, fmt.Errorf("create executor directory: %w", err)
	}
	if cfg.log == nil {
		cfg.log = slog.New(slog.DiscardHandler)
	}
	rt, err := newRuntime(bin, filepath.Join(dir, stateDirName), cfg.log)
	if err != nil {
		return nil, err
	}
	e := &Executor{dir: dir, rt: rt, cfg: cfg}
	if err := e.setupCgroups(); err != nil {
		return nil, err
	}
	if len(cfg.uids) > 0 || len(cfg.gids) > 0 {
		// The container's root reaches its rootfs through the bundle
		// directory: it must be able to pass through it.
		if err := os.Chmod(dir, 0o711); err != nil {
			return nil, err
		}
		private := filepath.Join(dir, idmappedDirName)
		if err := os.MkdirAll(private, 0o700); err != nil {
			return nil, err
		}
		if err := os.Chmod(private, 0o700); err != nil {
			return nil, err
		}
		if e.userns, err = newUserns(root, filepath.Join(private, "store"), cfg.uids, cfg.gids); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// Close releases what New set up: the idmapped view of the daemon's
// storage for a user namespace, and the containers' parent cgroup.
func (e *Executor) Close() error {
	if e.warmDone != nil {
		e.warmCancel()
		<-e.warmDone
	}
	var errs []error
	if e.cg != nil {
		errs = append(errs, e.cg.RemoveParent(e.cfg.cgroupParent))
	}
	if e.userns != nil {
		errs = append(errs, e.userns.close())
	}
	return errors.Join(errs...)
}

// AdmitsContainers tells ops/exec that Run waits for the step's admission
// (ops.Admit) itself, once the container is ready to start.
func (e *Executor) AdmitsContainers() {}

// Runtime returns the name of the OCI runtime in use ("runc" or "crun").
func (e *Executor) Runtime() string { return e.rt.name }

// Run implements executor.Executor.
func (e *Executor) Run(ctx context.Context, root executor.Mount, mounts []executor.Mount, p executor.Process) (retErr error) {
	if err := p.Validate(); err != nil {
		return err
	}
	if len(root.Source) == 0 {
		return errdefs.Invalidf("executor: the root mount has no source")
	}
	for _, m := range mounts {
		if err := m.Validate(); err != nil {
			return err
		}
		if cleanAbs(m.Dest) == "/" {
			return errdefs.Invalidf("mount destination / is the root filesystem; pass it as root")
		}
	}
	if p.Security == sandbox.SecurityInsecure && !e.cfg.allowInsecure {
		return errdefs.WithClass(errdefs.ErrPermissionDenied,
			errors.New("security.insecure is not allowed: the daemon must be started with --allow-insecure-entitlement security.insecure"))
	}
	if p.Hostname == "" {
		p.Hostname = e.cfg.hostname
	}

	id, err := newID()
	if err != nil {
		return err
	}
	b, err := newBundle(filepath.Join(e.dir, id))
	if err != nil {
		return err
	}
	ms := newMountSet(b)
	ms.userns = e.userns
	// asRoot runs fn as the container's root on the host when processes
	// run in a user namespace: what the daemon creates in the rootfs is
	// then theirs.
	asRoot := func(fn func() error) error { return fn() }
	if e.userns != nil {
		if err := os.Chmod(b.dir, 0o711); err != nil {
			return err
		}
		asRoot = e.userns.asContainerRoot
	}
	defer func() {
		if err := asRoot(ms.release); err != nil {
			retErr = errors.Join(retErr, fmt.Errorf("release mounts of container %s: %w", id, err))
			var se *stubError
			if !errors.As(err, &se) {
				return // something may still be mounted: keep the bundle for Cleanup
			}
		}
		if err := b.remove(); err != nil {
			retErr = errors.Join(retErr, err)
		}
	}()

	var (
		u             user.User
		runtimeMounts []specs.Mount
	)
	cwd := p.Cwd
	if cwd == "" {
		cwd = "/"
	}
	err = asRoot(func() error {
		if err := ms.mountRoot(root); err != nil {
			return err
		}
		var err error
		if u, err = user.Resolve(b.rootfs(), p.User); err != nil {
			return err
		}
		etc, err := b.writeEtcFiles(etcConfig{
			hostname:   p.Hostname,
			extraHosts: p.ExtraHosts,
			resolvConf: e.cfg.resolvConf,
			hostNet:    p.Net != sandbox.NetNone,
		})
		if err != nil {
			return err
		}
		if runtimeMounts, err = ms.setup(withEtcMounts(mounts, etc)); err != nil {
			return err
		}
		return ms.ensureWorkdir(cwd, u.UID, u.GID)
	})
	if err != nil {
		return err
	}
	acct, err := e.newAccount(id)
	if err != nil {
		return err
	}
	defer func() {
		if err := acct.remove(); err != nil {
			retErr = errors.Join(retErr, err)
		}
	}()
	spec, err := generateSpec(ctx, specConfig{
		id:            id,
		rootfs:        b.rootfs(),
		readonlyRoot:  root.Readonly,
		proc:          p,
		cwd:           cleanAbs(cwd),
		user:          u,
		cgroupsPath:   acct.cgroupsPath,
		memoryLimit:   e.cfg.memoryLimit,
		runtimeMounts: runtimeMounts,
		userns:        e.userns,
	})
	if err != nil {
		return err
	}
	e.precompileSeccomp(ctx, spec)
	if err := b.writeSpec(spec); err != nil {
		return err
	}
	// runc reports a program the kernel cannot execute on the process's
	// stderr ("exec /prog: exec format error") with exit code 1; the tail
	// of stderr tells, and the root is still mounted to say what the
	// program is.
	tail := &tailWriter{w: p.Stderr}
	p.Stderr = tail
	// The step waits for the scheduler only now, its root mounted and
	// its spec written: preparing it overlapped the steps running.
	release, err := ops.Admit(ctx)
	if err != nil {
		return err
	}
	res, err := e.rt.run(ctx, id, b, p, acct.cloneInto)
	release()
	err = acct.finish(res, err, p.Usage)
	if err != nil && (strings.Contains(strings.ToLower(err.Error()), execFormat) || tail.contains(execFormat)) {
		return explainExecFormat(err, b.rootfs(), p, binfmt.Dir)
	}
	return err
}

// newID returns a random container id.
func newID() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("container id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
