package worker

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/core/sandbox"
	"github.com/kiln-build/kiln/executor"
	"github.com/kiln-build/kiln/graph"
	"github.com/kiln-build/kiln/ops"
	"github.com/kiln-build/kiln/ops/exec"
	"github.com/kiln-build/kiln/ops/file"
	"github.com/kiln-build/kiln/session"
	srchttp "github.com/kiln-build/kiln/source/http"
	"github.com/kiln-build/kiln/source/image"
	"github.com/kiln-build/kiln/source/local"
)

// GitSource makes the ops of git sources. It is an interface so that the
// worker does not depend on how repositories are fetched.
type GitSource interface {
	NewOp(v *graph.Vertex, snaps ops.Snapshots, sess session.Session) (ops.Op, error)
}

// Worker implements solver.Worker over the daemon's storage and runtime.
type Worker struct {
	snaps       *Snapshots
	executor    executor.Executor
	cacheMounts *exec.CacheMounts
	contexts    *local.Store
	puller      *image.Puller
	http        *srchttp.Cache
	git         GitSource
	stateDir    string
	hostname    string
	network     sandbox.NetMode
}

// Config holds the worker's parts. Every field but Git is required.
type Config struct {
	Snapshots   *Snapshots
	Executor    executor.Executor
	CacheMounts *exec.CacheMounts
	Contexts    *local.Store
	Puller      *image.Puller
	HTTP        *srchttp.Cache
	Git         GitSource
	// StateDir holds the temporary mounts of running steps
	// (<root>/steps); New empties it.
	StateDir string
	Hostname string
	// DefaultNetwork is the network of RUN steps that choose none.
	DefaultNetwork sandbox.NetMode
}

// New returns a worker. It removes what crashed steps left in StateDir.
func New(c Config) (*Worker, error) {
	if c.Snapshots == nil || c.Executor == nil || c.CacheMounts == nil || c.Contexts == nil || c.Puller == nil || c.HTTP == nil || c.StateDir == "" {
		return nil, errdefs.Invalidf("worker: incomplete configuration")
	}
	if err := exec.Cleanup(c.StateDir); err != nil {
		return nil, fmt.Errorf("worker: clean step state: %w", err)
	}
	return &Worker{
		snaps: c.Snapshots, executor: c.Executor, cacheMounts: c.CacheMounts, contexts: c.Contexts,
		puller: c.Puller, http: c.HTTP, git: c.Git, stateDir: c.StateDir, hostname: c.Hostname, network: c.DefaultNetwork,
	}, nil
}

// Snapshots returns the worker's snapshot manager.
func (w *Worker) Snapshots() *Snapshots { return w.snaps }

// Op implements solver.Worker.
func (w *Worker) Op(v *graph.Vertex, sess session.Session) (ops.Op, error) {
	switch op := v.Op; {
	case op.Source != nil && op.Source.Image != nil:
		opts := []image.OpOption{image.WithVertex(v.Digest())}
		if sess != nil {
			opts = append(opts, image.WithOpCredentials(image.SessionCredentials(sess)))
		}
		return image.NewOp(op, w.puller, func(ctx context.Context, name string) (ops.Ref, error) {
			return w.snaps.Load(ctx, name)
		}, opts...)
	case op.Source != nil && op.Source.Local != nil:
		if sess == nil {
			return nil, errdefs.WithClass(errdefs.ErrFailedPrecondition, fmt.Errorf("local source %q: the build has no client session", op.Source.Local.Name))
		}
		return local.NewOp(w.contexts, v, sess)
	case op.Source != nil && op.Source.HTTP != nil:
		return srchttp.NewOp(op.Source.HTTP, op.Digest(), w.snaps, w.http)
	case op.Source != nil && op.Source.Git != nil:
		if w.git == nil {
			return nil, errdefs.WithClass(errdefs.ErrUnimplemented, fmt.Errorf("git sources are not available in this kilnd"))
		}
		return w.git.NewOp(v, w.snaps, sess)
	case op.Exec != nil:
		return exec.New(v, sess, exec.Deps{
			Snapshots: w.snaps, Executor: w.executor, CacheMounts: w.cacheMounts,
			StateDir: w.stateDir, Hostname: w.hostname, DefaultNetwork: w.network,
		}), nil
	case op.File != nil:
		return file.New(v, w.snaps, file.WithMountDir(filepath.Join(w.stateDir, "file")))
	case op.Merge != nil:
		return file.NewMerge(v, w.snaps, file.WithMountDir(filepath.Join(w.stateDir, "file")))
	case op.Diff != nil:
		return file.NewDiff(v, w.snaps, file.WithMountDir(filepath.Join(w.stateDir, "file")))
	}
	return nil, errdefs.Invalidf("vertex %s: unsupported op %q", v.Meta.Name, v.Op.Kind())
}

// Load implements solver.Worker.
func (w *Worker) Load(ctx context.Context, id string) (ops.Ref, error) {
	return w.snaps.Load(ctx, id)
}

// Checksum implements solver.Worker: the content digest of the selected
// paths of a synced context.
func (w *Worker) Checksum(ctx context.Context, ref ops.Ref, selectors []string) (ops.Content, error) {
	switch r := ref.(type) {
	case *local.Ref:
		return r.Checksum(ctx, selectors)
	case ops.Dir:
		return local.Checksum(ctx, r.Dir(), selectors)
	}
	return ops.Content{}, fmt.Errorf("checksum: %T is not a directory result", ref)
}
