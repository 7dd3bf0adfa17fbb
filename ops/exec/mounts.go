package exec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/core/mount"
	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/executor"
	"github.com/kiln-build/kiln/graph"
	"github.com/kiln-build/kiln/ops"
	"github.com/kiln-build/kiln/session"
)

// runEnv holds the host-side state of one step's mounts and undoes it.
type runEnv struct {
	deps Deps
	sess session.Session

	dir      string         // per-step directory under StateDir
	cleanups []func() error // run in reverse order

	secretDir string // tmpfs for secret files
	sshSocket string // host path of the agent socket
	sshTarget string // its path in the container

	// output is the target of the bind mount that is the step's result
	// (graph.ExecOp.Output); outputActive is its writable filesystem.
	output       string
	outputActive ops.Active
	name         string
}

func (e *runEnv) stepDir() (string, error) {
	if e.dir != "" {
		return e.dir, nil
	}
	if err := os.MkdirAll(e.deps.StateDir, 0o700); err != nil {
		return "", err
	}
	d, err := os.MkdirTemp(e.deps.StateDir, "step-")
	if err != nil {
		return "", err
	}
	e.dir = d
	e.cleanups = append(e.cleanups, func() error {
		if err := unmountTree(d); err != nil {
			return err
		}
		return os.RemoveAll(d)
	})
	return d, nil
}

func (e *runEnv) subdir(name string) (string, error) {
	d, err := e.stepDir()
	if err != nil {
		return "", err
	}
	p, err := os.MkdirTemp(d, name+"-")
	if err != nil {
		return "", err
	}
	return p, nil
}

// cleanup undoes everything, in reverse order.
func (e *runEnv) cleanup() {
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		_ = e.cleanups[i]()
	}
	e.cleanups = nil
}

// mounts builds the executor mounts of ms, and the environment entries of
// secrets given as variables.
func (e *runEnv) mounts(ctx context.Context, ms []graph.Mount, inputs []ops.Ref) ([]executor.Mount, []string, error) {
	var out []executor.Mount
	var secretEnv []string
	for _, m := range ms {
		var (
			em  *executor.Mount
			err error
		)
		switch m.Type {
		case graph.MountBind:
			em, err = e.bind(ctx, m, inputs)
		case graph.MountCache:
			em, err = e.cache(ctx, m, inputs)
		case graph.MountTmpfs:
			t := executor.TmpfsMount(m.Target, m.TmpfsSize)
			em = &t
		case graph.MountSecret:
			var env string
			em, env, err = e.secret(ctx, m)
			if env != "" {
				secretEnv = append(secretEnv, env)
			}
		case graph.MountSSH:
			em, err = e.ssh(ctx, m)
		default:
			err = errdefs.Invalidf("unknown mount type %q", m.Type)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", describeMount(m), err)
		}
		if em != nil {
			out = append(out, *em)
		}
	}
	return out, secretEnv, nil
}

// inputDir returns a host directory holding ref's filesystem (read-only).
func (e *runEnv) inputDir(ctx context.Context, ref ops.Ref) (string, error) {
	if ref == nil {
		return e.subdir("empty")
	}
	if d, ok := ref.(ops.Dir); ok {
		return d.Dir(), nil
	}
	mt, ok := ref.(ops.Mountable)
	if !ok {
		return "", fmt.Errorf("input %T cannot be mounted", ref)
	}
	mounts, release, err := mt.Mount(ctx)
	if err != nil {
		return "", err
	}
	dir, err := e.subdir("input")
	if err != nil {
		_ = release()
		return "", err
	}
	if err := mount.All(mounts, dir); err != nil {
		_ = release()
		return "", fmt.Errorf("mount input: %w", err)
	}
	e.cleanups = append(e.cleanups, func() error {
		err := mount.UnmountAll(dir, 0)
		return errors.Join(err, release())
	})
	return dir, nil
}

// selected resolves the selector inside an input directory without leaving
// it.
func selected(dir, selector string) (string, error) {
	if selector == "" || selector == "/" {
		return dir, nil
	}
	p, err := securejoin.SecureJoin(dir, selector)
	if err != nil {
		return "", err
	}
	if _, err := os.Lstat(p); err != nil {
		return "", errdefs.NotFoundf("source path %q: not found", selector)
	}
	return p, nil
}

func (e *runEnv) bind(ctx context.Context, m graph.Mount, inputs []ops.Ref) (*executor.Mount, error) {
	var ref ops.Ref
	if m.Input >= 0 {
		ref = inputs[m.Input]
	}
	if m.Target == e.output && e.output != "" {
		return e.outputBind(ctx, m, ref)
	}
	dir, err := e.inputDir(ctx, ref)
	if err != nil {
		return nil, err
	}
	src, err := selected(dir, m.Selector)
	if err != nil {
		return nil, err
	}
	if m.Readonly {
		bm := executor.BindMount(m.Target, src, true)
		return &bm, nil
	}
	// A writable bind: writes go to a throw-away overlay upper directory
	// and are discarded with the step.
	st, err := os.Stat(src)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		tmp, err := e.subdir("rwfile")
		if err != nil {
			return nil, err
		}
		cp := filepath.Join(tmp, "file")
		if err := copyFile(src, cp, st.Mode()); err != nil {
			return nil, err
		}
		bm := executor.BindMount(m.Target, cp, false)
		return &bm, nil
	}
	tmp, err := e.subdir("rw")
	if err != nil {
		return nil, err
	}
	upper, work := filepath.Join(tmp, "upper"), filepath.Join(tmp, "work")
	for _, d := range []string{upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, err
		}
	}
	return &executor.Mount{Dest: m.Target, Source: []mount.Mount{{
		Type: "overlay", Source: "overlay",
		Options: []string{"lowerdir=" + src, "upperdir=" + upper, "workdir=" + work},
	}}}, nil
}

// outputBind makes the writable filesystem of the output mount: a new
// snapshot on the mount's input, mounted read-write, committed as the
// step's result.
func (e *runEnv) outputBind(ctx context.Context, m graph.Mount, ref ops.Ref) (*executor.Mount, error) {
	if _, isDir := ref.(ops.Dir); isDir {
		return nil, errdefs.Invalidf("an output mount cannot be made on a local context")
	}
	if m.Selector != "" {
		return nil, errdefs.Invalidf("an output mount cannot have a selector")
	}
	act, err := e.deps.Snapshots.New(ctx, ref, e.name+" (output "+m.Target+")")
	if err != nil {
		return nil, err
	}
	e.outputActive = act
	return &executor.Mount{Dest: m.Target, Source: act.Mounts()}, nil
}

func (e *runEnv) cache(ctx context.Context, m graph.Mount, inputs []ops.Ref) (*executor.Mount, error) {
	req := CacheRequest{ID: m.CacheID, Sharing: m.Sharing, UID: m.UID, GID: m.GID, Mode: m.Mode}
	if req.ID == "" {
		req.ID = m.Target
	}
	if m.Input >= 0 {
		ref := inputs[m.Input]
		req.Seed = func(dst string) error {
			dir, err := e.inputDir(ctx, ref)
			if err != nil {
				return err
			}
			src, err := selected(dir, m.Selector)
			if err != nil {
				return err
			}
			return copyTree(src, dst)
		}
	}
	dir, release, err := e.deps.CacheMounts.Get(ctx, req)
	if err != nil {
		return nil, err
	}
	e.cleanups = append(e.cleanups, func() error { release(); return nil })
	bm := executor.BindMount(m.Target, dir, m.Readonly)
	return &bm, nil
}

func (e *runEnv) secret(ctx context.Context, m graph.Mount) (*executor.Mount, string, error) {
	if e.sess == nil {
		return nil, "", errdefs.WithClass(errdefs.ErrFailedPrecondition, fmt.Errorf("secret %s: the build has no client session", m.SecretID))
	}
	data, err := e.sess.Secret(ctx, m.SecretID)
	if errdefs.IsNotFound(err) {
		if m.Required {
			return nil, "", notFound("secret", m.SecretID)
		}
		return nil, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("secret %s: %w", m.SecretID, err)
	}
	var env string
	if m.Env != "" {
		env = m.Env + "=" + string(data)
	}
	if m.Target == "" {
		return nil, env, nil
	}
	if e.secretDir == "" {
		d, err := e.subdir("secrets")
		if err != nil {
			return nil, "", err
		}
		// Secrets live on a private tmpfs: never on disk, gone at unmount.
		tm := mount.Mount{Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "noexec", "mode=0700", "size=16m"}}
		if err := tm.Mount(d); err != nil {
			return nil, "", fmt.Errorf("mount secret tmpfs: %w", err)
		}
		e.cleanups = append(e.cleanups, func() error { return mount.UnmountAll(d, 0) })
		e.secretDir = d
	}
	f, err := os.CreateTemp(e.secretDir, "s-")
	if err != nil {
		return nil, "", err
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		return nil, "", fmt.Errorf("write secret %s: %w", m.SecretID, err)
	}
	if err := chownMode(f.Name(), m.UID, m.GID, m.Mode, 0o400); err != nil {
		return nil, "", err
	}
	bm := executor.BindMount(m.Target, f.Name(), true)
	return &bm, env, nil
}

func (e *runEnv) ssh(ctx context.Context, m graph.Mount) (*executor.Mount, error) {
	if e.sess == nil {
		return nil, errdefs.WithClass(errdefs.ErrFailedPrecondition, fmt.Errorf("ssh %s: the build has no client session", m.SSHID))
	}
	id := m.SSHID
	if id == "" {
		id = "default"
	}
	// Check that the client forwards this agent before the step starts.
	probe, err := e.sess.DialSSH(ctx, id)
	if errdefs.IsNotFound(err) {
		if m.Required {
			return nil, notFound("ssh", id)
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ssh agent %s: %w", id, err)
	}
	_ = probe.Close()

	d, err := e.subdir("ssh")
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(d, "agent.sock")
	relay, err := session.ServeAgent(ctx, e.sess, id, sock)
	if err != nil {
		return nil, fmt.Errorf("ssh agent socket: %w", err)
	}
	e.cleanups = append(e.cleanups, relay.Close)
	if err := chownMode(sock, m.UID, m.GID, m.Mode, 0o600); err != nil {
		return nil, err
	}
	e.sshSocket, e.sshTarget = sock, m.Target
	bm := executor.BindMount(m.Target, sock, false)
	return &bm, nil
}

func chownMode(p string, uid, gid *int, mode *uint32, defMode os.FileMode) error {
	u, g := 0, 0
	if uid != nil {
		u = *uid
	}
	if gid != nil {
		g = *gid
	}
	if err := os.Lchown(p, u, g); err != nil {
		return err
	}
	m := defMode
	if mode != nil {
		m = os.FileMode(*mode)
	}
	return os.Chmod(p, m)
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode.Perm())
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	return errors.Join(err, out.Close())
}

// unmountTree unmounts everything mounted at or below dir, deepest first.
func unmountTree(dir string) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return mount.UnmountRecursive(dir, unix.MNT_DETACH)
}
