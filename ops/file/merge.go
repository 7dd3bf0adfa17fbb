package file

import (
	"context"
	"fmt"
	"os"

	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/graph"
	"github.com/kiln-build/kiln/ops"
)

// MergeOp runs a graph.MergeOp: a new snapshot on its first input with
// every later input's whole filesystem copied on top, in order, the way
// layers stack. Copies keep owners, modes, times, extended attributes and
// the hard links inside each input; an entry replaces what is at its path,
// except that directories merge. A directory replaces a link of a lower
// input (layers stack; links are not followed), as in BuildKit.
type MergeOp struct {
	dgst  digest.Digest
	snaps ops.Snapshots
	opts  options
	n     int
}

var _ ops.Op = (*MergeOp)(nil)

// NewMerge returns the executable form of the merge vertex v (v.Op.Merge
// set), which writes its result through snaps.
func NewMerge(v *graph.Vertex, snaps ops.Snapshots, opts ...Option) (*MergeOp, error) {
	if v == nil || v.Op.Merge == nil {
		return nil, errdefs.Invalidf("merge op: vertex has no merge op")
	}
	if err := v.Op.Validate(len(v.Inputs)); err != nil {
		return nil, errdefs.Invalidf("merge op: %v", err)
	}
	return &MergeOp{dgst: v.Op.Digest(), snaps: snaps, opts: newOptions(opts), n: len(v.Inputs)}, nil
}

// CacheMap implements ops.Op: the op digest; every input is read whole.
func (m *MergeOp) CacheMap(context.Context) (*ops.CacheMap, error) {
	return &ops.CacheMap{Digest: m.dgst}, nil
}

// Exec implements ops.Op.
func (m *MergeOp) Exec(ctx context.Context, inputs []ops.Ref) (_ ops.Ref, err error) {
	if len(inputs) != m.n || m.n == 0 {
		return nil, errdefs.Invalidf("merge op: %d inputs, want %d", len(inputs), m.n)
	}
	// The first input is the parent snapshot unless it is not one (a
	// context directory, an empty input): then it is copied like the rest.
	parent, first := inputs[0], 1
	if _, isDir := parent.(ops.Dir); isDir || parent == nil {
		parent, first = nil, 0
	}
	act, err := m.snaps.New(ctx, parent, "merge")
	if err != nil {
		return nil, err
	}
	defer func() {
		if derr := act.Discard(context.WithoutCancel(ctx)); derr != nil && err == nil {
			err = derr
		}
	}()
	op := &Op{opts: m.opts, where: make([]string, len(inputs))}
	for i := range op.where {
		op.where[i] = fmt.Sprintf("merge input %d", i)
	}
	x := &execution{op: op, act: act, inputs: inputs, srcs: map[int]*tree{}}
	defer func() { err = joinErr(err, x.close()) }()
	for i := first; i < len(inputs); i++ {
		if inputs[i] == nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, context.Cause(ctx)
		}
		if err := x.mergeInput(ctx, i); err != nil {
			return nil, fmt.Errorf("merge input %d: %w", i, err)
		}
	}
	if err := x.unmountRoot(); err != nil {
		return nil, err
	}
	return act.Commit(ctx)
}

// mergeInput copies the whole filesystem of input i onto the root.
func (x *execution) mergeInput(ctx context.Context, i int) error {
	src, err := x.source(ctx, i)
	if err != nil {
		return err
	}
	d, err := x.root()
	if err != nil {
		return err
	}
	fi, err := os.Lstat(src.dir)
	if err != nil {
		return err
	}
	c := &copier{ctx: ctx, src: src, dst: d, keepOwner: true, keepXattrs: true, stack: true, inodes: map[inode]string{}}
	if err := c.copy(src.dir, fi, "", true); err != nil {
		return err
	}
	return d.finishDirs(d.dir)
}
