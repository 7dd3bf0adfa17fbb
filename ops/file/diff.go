package file

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/containerd/continuity/fs"
	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/graph"
	"github.com/kiln-build/kiln/ops"
)

// DiffOp runs a graph.DiffOp: a new snapshot holding what its upper input
// adds or changes relative to its lower input (found by
// github.com/containerd/continuity/fs.Changes), with the parent
// directories of those entries as upper has them. Entries keep owners,
// modes, times and extended attributes. A path that upper removes cannot
// be represented in a filesystem and is an error naming it.
type DiffOp struct {
	dgst  digest.Digest
	snaps ops.Snapshots
	opts  options
}

var _ ops.Op = (*DiffOp)(nil)

// NewDiff returns the executable form of the diff vertex v (v.Op.Diff
// set), which writes its result through snaps.
func NewDiff(v *graph.Vertex, snaps ops.Snapshots, opts ...Option) (*DiffOp, error) {
	if v == nil || v.Op.Diff == nil {
		return nil, errdefs.Invalidf("diff op: vertex has no diff op")
	}
	if err := v.Op.Validate(len(v.Inputs)); err != nil {
		return nil, errdefs.Invalidf("diff op: %v", err)
	}
	return &DiffOp{dgst: v.Op.Digest(), snaps: snaps, opts: newOptions(opts)}, nil
}

// CacheMap implements ops.Op: the op digest; both inputs are read whole.
func (o *DiffOp) CacheMap(context.Context) (*ops.CacheMap, error) {
	return &ops.CacheMap{Digest: o.dgst}, nil
}

// Exec implements ops.Op.
func (o *DiffOp) Exec(ctx context.Context, inputs []ops.Ref) (_ ops.Ref, err error) {
	if len(inputs) != 2 {
		return nil, errdefs.Invalidf("diff op: %d inputs, want 2", len(inputs))
	}
	act, err := o.snaps.New(ctx, nil, "diff")
	if err != nil {
		return nil, err
	}
	defer func() {
		if derr := act.Discard(context.WithoutCancel(ctx)); derr != nil && err == nil {
			err = derr
		}
	}()
	op := &Op{opts: o.opts, where: []string{"the diff's lower input", "the diff's upper input"}}
	x := &execution{op: op, act: act, inputs: inputs, srcs: map[int]*tree{}}
	defer func() { err = joinErr(err, x.close()) }()
	lower, err := x.source(ctx, 0)
	if err != nil {
		return nil, err
	}
	upper, err := x.source(ctx, 1)
	if err != nil {
		return nil, err
	}
	d, err := x.root()
	if err != nil {
		return nil, err
	}
	c := &copier{ctx: ctx, src: upper, dst: d, keepOwner: true, keepXattrs: true, inodes: map[inode]string{}}
	err = fs.Changes(ctx, lower.dir, upper.dir, func(k fs.ChangeKind, p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(p, "/")
		switch k {
		case fs.ChangeKindDelete:
			return errdefs.Invalidf("diff op: the upper input removes /%s, and a diff with removals is not supported", rel)
		case fs.ChangeKindAdd, fs.ChangeKindModify:
		default:
			return nil
		}
		if err := diffParents(c, rel); err != nil {
			return err
		}
		if fi.IsDir() {
			if existing, _ := d.lookup(rel); existing != nil {
				return nil // made as a parent already
			}
			_, err := c.makeDir(upper.host(rel), statOf(fi), rel, false)
			return err
		}
		return c.copyNonDir(upper.host(rel), fi, rel)
	})
	if err != nil {
		return nil, fmt.Errorf("diff: %w", hideRoots(err, lower.dir, upper.dir, d.dir))
	}
	if err := d.finishDirs(d.dir); err != nil {
		return nil, err
	}
	if err := x.unmountRoot(); err != nil {
		return nil, err
	}
	return act.Commit(ctx)
}

// diffParents makes the missing parent directories of rel with the
// metadata upper has for them.
func diffParents(c *copier, rel string) error {
	parts := strings.Split(rel, "/")
	cur := ""
	for _, p := range parts[:len(parts)-1] {
		cur = join(cur, p)
		if fi, err := c.dst.lookup(cur); err != nil || fi != nil {
			if err != nil {
				return err
			}
			continue
		}
		fi, err := os.Lstat(c.src.host(cur))
		if err != nil {
			return err
		}
		if _, err := c.makeDir(c.src.host(cur), statOf(fi), cur, false); err != nil {
			return err
		}
	}
	return nil
}
