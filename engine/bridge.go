package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"sync"

	"github.com/containerd/containerd/v2/core/mount"
	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/executor"
	"github.com/kiln-build/kiln/frontend"
	"github.com/kiln-build/kiln/graph"
	"github.com/kiln-build/kiln/ops"
	"github.com/kiln-build/kiln/progress"
	"github.com/kiln-build/kiln/session"
	"github.com/kiln-build/kiln/solver"
)

// bridge implements frontend.Bridge for one build.
type bridge struct {
	e        *Engine
	sess     session.Session
	pw       progress.Writer
	opt      solver.SolveOpt
	asked    []string // the build's entitlements
	mountDir string
}

var _ frontend.Bridge = (*bridge)(nil)

// newBridge returns the bridge of a build.
func (e *Engine) newBridge(req Request, sess session.Session, pw progress.Writer, remotes []solver.RemoteCache) *bridge {
	return &bridge{
		e: e, sess: sess, pw: pw, asked: req.Entitlements, mountDir: e.mountDir,
		opt: solver.SolveOpt{Session: sess, Progress: pw, NoCache: req.NoCache, Remote: remotes},
	}
}

// NewBridge returns a frontend.Bridge for work outside Build (BuildKit's
// gateway API driven by a client, as docker buildx does): it solves with
// sess, reports to pw, honours req's NoCache and Entitlements and the
// daemon's caches (not req's --cache-from). Results it returns must be
// released; the bridge itself holds nothing.
func (e *Engine) NewBridge(req Request, sess session.Session, pw progress.Writer) frontend.Bridge {
	if pw == nil {
		pw = progress.Discard
	}
	return e.newBridge(req, sess, pw, nil)
}

// Solve implements frontend.Bridge.
func (b *bridge) Solve(ctx context.Context, root *graph.Vertex) (frontend.Ref, error) {
	if root == nil {
		return &bridgeRef{b: b}, nil
	}
	if err := graph.Validate(root); err != nil {
		return nil, errdefs.Invalidf("%v", err)
	}
	if err := b.e.checkEntitlements([]*graph.Vertex{root}, b.asked); err != nil {
		return nil, err
	}
	sol, err := b.e.solver.Solve(ctx, []*graph.Vertex{root}, b.opt)
	if err != nil {
		return nil, err
	}
	return &bridgeRef{b: b, sol: sol, ref: sol.Results[0].Ref}, nil
}

// readFile is the ReadFile of llb.Options: solve v and read one file.
func (b *bridge) readFile(ctx context.Context, v *graph.Vertex, p string) ([]byte, error) {
	ref, err := b.Solve(ctx, v)
	if err != nil {
		return nil, err
	}
	defer ref.Release(context.WithoutCancel(ctx))
	return ref.ReadFile(ctx, p, 0, -1)
}

// Run implements frontend.Bridge.
func (b *bridge) Run(ctx context.Context, root frontend.Ref, p frontend.Process) error {
	if b.e.executor == nil || b.e.snapshots == nil {
		return errdefs.WithClass(errdefs.ErrUnimplemented, errors.New("this engine cannot run frontend containers"))
	}
	var parent ops.Ref
	if r, ok := root.(*bridgeRef); ok && r.ref != nil {
		parent = r.ref
	} else if !ok && root != nil {
		return errdefs.Invalidf("run: the root filesystem %T is not a result of this build", root)
	}
	act, err := b.e.snapshots.New(ctx, parent, "frontend container")
	if err != nil {
		return err
	}
	defer act.Discard(context.WithoutCancel(ctx))
	proc := executor.Process{
		Args: p.Args, Env: p.Env, Cwd: p.Cwd, User: p.User, Net: p.Network,
		Stdin: p.Stdin, Stdout: p.Stdout, Stderr: p.Stderr,
	}
	return b.e.executor.Run(ctx, executor.Mount{Dest: "/", Source: act.Mounts()}, nil, proc)
}

// bridgeRef is a solved result a frontend reads. It mounts the result
// (read-only) the first time it is read and unmounts it on Release.
type bridgeRef struct {
	b   *bridge
	sol *solver.Solution
	ref ops.Ref // nil: an empty filesystem

	mu      sync.Mutex
	dir     string
	release []func() error
}

// root returns a host directory holding the filesystem.
func (r *bridgeRef) root(ctx context.Context) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dir != "" {
		return r.dir, nil
	}
	switch ref := r.ref.(type) {
	case nil:
		d, err := os.MkdirTemp(r.b.mountDir, "empty-")
		if err != nil {
			return "", err
		}
		r.dir = d
		r.release = append(r.release, func() error { return os.Remove(d) })
	case ops.Dir:
		r.dir = ref.Dir()
	case ops.Mountable:
		mounts, unview, err := ref.Mount(ctx)
		if err != nil {
			return "", err
		}
		d, err := os.MkdirTemp(r.b.mountDir, "ref-")
		if err != nil {
			_ = unview()
			return "", err
		}
		if err := mount.All(mounts, d); err != nil {
			_ = unview()
			_ = os.Remove(d)
			return "", fmt.Errorf("mount result: %w", err)
		}
		r.dir = d
		r.release = append(r.release, unview, func() error { return os.Remove(d) }, func() error { return mount.UnmountAll(d, unix.MNT_DETACH) })
	default:
		return "", fmt.Errorf("a %T result cannot be read", r.ref)
	}
	return r.dir, nil
}

// resolve returns the host path of p, its links resolved inside the root;
// with parentOnly, the last element is not followed.
func (r *bridgeRef) resolve(ctx context.Context, p string, parentOnly bool) (string, error) {
	root, err := r.root(ctx)
	if err != nil {
		return "", err
	}
	clean := path.Clean("/" + p)
	if !parentOnly || clean == "/" {
		return securejoin.SecureJoin(root, clean)
	}
	dir, err := securejoin.SecureJoin(root, path.Dir(clean))
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, path.Base(clean)), nil
}

// ReadFile implements frontend.Ref.
func (r *bridgeRef) ReadFile(ctx context.Context, p string, offset, limit int64) ([]byte, error) {
	hp, err := r.resolve(ctx, p, false)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(hp)
	if err != nil {
		return nil, notExist(p, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errdefs.Invalidf("%s is not a regular file", p)
	}
	if offset > 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			return nil, err
		}
	}
	var rd io.Reader = f
	if limit >= 0 {
		rd = io.LimitReader(f, limit)
	}
	return io.ReadAll(rd)
}

// ReadDir implements frontend.Ref.
func (r *bridgeRef) ReadDir(ctx context.Context, p string) ([]frontend.FileInfo, error) {
	hp, err := r.resolve(ctx, p, false)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(hp)
	if err != nil {
		return nil, notExist(p, err)
	}
	out := make([]frontend.FileInfo, 0, len(ents))
	for _, e := range ents {
		fi, err := fileInfo(filepath.Join(hp, e.Name()), e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, fi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// StatFile implements frontend.Ref.
func (r *bridgeRef) StatFile(ctx context.Context, p string) (frontend.FileInfo, error) {
	hp, err := r.resolve(ctx, p, true)
	if err != nil {
		return frontend.FileInfo{}, err
	}
	fi, err := fileInfo(hp, p)
	if err != nil {
		return frontend.FileInfo{}, notExist(p, err)
	}
	return fi, nil
}

func fileInfo(hp, name string) (frontend.FileInfo, error) {
	var st unix.Stat_t
	if err := unix.Lstat(hp, &st); err != nil {
		return frontend.FileInfo{}, &os.PathError{Op: "lstat", Path: name, Err: err}
	}
	fi, err := os.Lstat(hp)
	if err != nil {
		return frontend.FileInfo{}, err
	}
	out := frontend.FileInfo{
		Name: name, Mode: fi.Mode(), UID: st.Uid, GID: st.Gid, Size: st.Size, ModTime: fi.ModTime(),
		Devmajor: unix.Major(st.Rdev), Devminor: unix.Minor(st.Rdev),
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		out.Linkname, _ = os.Readlink(hp)
	}
	return out, nil
}

// notExist turns a missing path into a not-found error that names the
// path as the frontend gave it (never the host path).
func notExist(p string, err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return errdefs.NotFoundf("%s: no such file or directory", p)
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", p, pe.Err)
	}
	return err
}

// Release implements frontend.Ref.
func (r *bridgeRef) Release(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for i := len(r.release) - 1; i >= 0; i-- {
		errs = append(errs, r.release[i]())
	}
	r.release, r.dir = nil, ""
	if r.sol != nil {
		r.sol.Release(ctx)
		r.sol = nil
	}
	return errors.Join(errs...)
}
