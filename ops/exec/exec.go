// Package exec runs graph.ExecOp steps (Dockerfile RUN): it prepares the
// step's root filesystem as a new snapshot on its root input, builds the
// RUN --mount mounts (bind, cache, tmpfs, secret, ssh), runs the command
// through an executor.Executor with its output streamed as progress logs,
// and commits the root filesystem as the step's result.
//
// Secrets are fetched from the build's session, written to a private tmpfs
// that is unmounted when the step ends, and never enter a snapshot, a log or
// the cache key.
package exec

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/core/sandbox"
	"github.com/kiln-build/kiln/executor"
	"github.com/kiln-build/kiln/graph"
	"github.com/kiln-build/kiln/ops"
	"github.com/kiln-build/kiln/progress"
	"github.com/kiln-build/kiln/session"
)

// Deps are what an exec op needs from the worker.
type Deps struct {
	Snapshots   ops.Snapshots
	Executor    executor.Executor
	CacheMounts *CacheMounts
	// StateDir holds temporary mount points and secret tmpfs mounts of
	// running steps (under the daemon root; emptied at start by Cleanup).
	StateDir string
	// Hostname of the build containers, if set.
	Hostname string
	// DefaultNetwork is the network of steps that do not choose one
	// (kilnd.toml [worker.oci] network-mode); empty is the host's.
	DefaultNetwork sandbox.NetMode
}

// Op is an exec step.
type Op struct {
	op     *graph.ExecOp
	vertex digest.Digest
	digest digest.Digest
	name   string
	deps   Deps
	sess   session.Session
}

var _ ops.Op = (*Op)(nil)

// New returns the op for v, whose Op.Exec must be set.
func New(v *graph.Vertex, sess session.Session, deps Deps) *Op {
	return &Op{op: v.Op.Exec, vertex: v.Digest(), digest: v.Op.Digest(), name: v.Meta.Name, deps: deps, sess: sess}
}

// CacheMap implements ops.Op.
func (o *Op) CacheMap(context.Context) (*ops.CacheMap, error) {
	_, admits := o.deps.Executor.(admitter)
	cm := &ops.CacheMap{Digest: o.digest, UsesExecutor: true, AdmitsItself: admits}
	// A bind mount of a local context reads exactly its selector.
	for _, m := range o.op.Mounts {
		if m.Input < 0 || m.Type != graph.MountBind {
			continue
		}
		for len(cm.Deps) <= m.Input {
			cm.Deps = append(cm.Deps, ops.Dep{})
		}
		sel := strings.Trim(m.Selector, "/")
		if sel == "" {
			// The whole input: an empty selector list.
			cm.Deps[m.Input].Selectors = nil
			continue
		}
		cm.Deps[m.Input].Selectors = append(cm.Deps[m.Input].Selectors, sel)
	}
	return cm, nil
}

// admitter is an executor that waits for the step's admission (ops.Admit)
// itself, once the container is ready to start.
type admitter interface{ AdmitsContainers() }

// Exec implements ops.Op.
func (o *Op) Exec(ctx context.Context, inputs []ops.Ref) (ops.Ref, error) {
	var parent ops.Ref
	if o.op.Root >= 0 {
		parent = inputs[o.op.Root]
	}
	active, err := o.deps.Snapshots.New(ctx, parent, o.name)
	if err != nil {
		return nil, err
	}
	defer active.Discard(context.WithoutCancel(ctx))

	env := &runEnv{deps: o.deps, sess: o.sess, output: o.op.Output, name: o.name}
	defer env.cleanup()
	mounts, secretEnv, err := env.mounts(ctx, o.op.Mounts, inputs)
	if err != nil {
		return nil, err
	}
	if env.outputActive != nil {
		defer env.outputActive.Discard(context.WithoutCancel(ctx))
	}

	pw := progress.FromContext(ctx)
	proc := executor.Process{
		ExtraHosts: o.op.ExtraHosts,
		Args:       o.op.Args,
		Env:        append(append([]string(nil), o.op.Env...), o.op.ProxyEnv...),
		SecretEnv:  secretEnv,
		User:       o.op.User,
		Cwd:        o.op.Cwd,
		Net:        o.network(),
		Security:   o.op.Security,
		Hostname:   o.hostname(),
		Stdout:     progress.LogWriter(pw, o.vertex, 1),
		Stderr:     progress.LogWriter(pw, o.vertex, 2),
	}
	if env.sshSocket != "" {
		proc.Env = append(proc.Env, "SSH_AUTH_SOCK="+env.sshTarget)
	}
	root := executor.Mount{Dest: "/", Source: active.Mounts(), Readonly: o.op.ReadonlyRoot}
	var usage executor.Usage
	proc.Usage = &usage
	err = o.deps.Executor.Run(ctx, root, mounts, proc)
	if usage.Wall > 0 {
		pw.Write(progress.Event{Usage: &progress.Usage{
			Vertex: o.vertex, Wall: usage.Wall, CPU: usage.CPU, MemoryPeak: usage.MemoryPeak,
			IORead: usage.IORead, IOWrite: usage.IOWrite, OOMKilled: usage.OOMKilled,
		}})
	}
	if err := o.exitStatus(err); err != nil {
		return nil, err
	}
	if env.outputActive != nil {
		// The result is the output mount's filesystem; the root's
		// changes go with the step.
		return env.outputActive.Commit(ctx)
	}
	return active.Commit(ctx)
}

// hostname is the step's hostname: its own, else the worker's.
func (o *Op) hostname() string {
	if o.op.Hostname != "" {
		return o.op.Hostname
	}
	return o.deps.Hostname
}

// exitStatus applies the op's valid exit codes to the executor's answer:
// without a list only 0 succeeds; with one, exactly the codes it holds.
func (o *Op) exitStatus(err error) error {
	if len(o.op.ValidExitCodes) == 0 {
		return err
	}
	code := 0
	if err != nil {
		var ee *executor.ExitError
		if !errors.As(err, &ee) {
			return err
		}
		code = ee.Code
	}
	for _, c := range o.op.ValidExitCodes {
		if c == code {
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("%w (valid exit codes: %v)", err, o.op.ValidExitCodes)
	}
	return fmt.Errorf("process %q exited with 0, which is not one of the valid exit codes %v", strings.Join(o.op.Args, " "), o.op.ValidExitCodes)
}

// network is the step's network: its own choice, else the daemon's default.
func (o *Op) network() sandbox.NetMode {
	if o.op.Network == sandbox.NetDefault {
		return o.deps.DefaultNetwork
	}
	return o.op.Network
}

// Cleanup removes what crashed steps left in stateDir. Call it at daemon
// start, before any step runs.
func Cleanup(stateDir string) error {
	ents, err := os.ReadDir(stateDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		p := filepath.Join(stateDir, e.Name())
		if err := unmountTree(p); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func notFound(what, id string) error {
	return errdefs.NotFoundf("%s %s: not found (pass it with --%s id=%s,...)", what, id, what, id)
}

func describeMount(m graph.Mount) string {
	if m.Target != "" {
		return fmt.Sprintf("--mount=type=%s,target=%s", m.Type, m.Target)
	}
	return fmt.Sprintf("--mount=type=%s", m.Type)
}
