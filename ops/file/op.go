package file

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"

	"github.com/moby/patternmatcher"
	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/graph"
	"github.com/kiln-build/kiln/ops"
	"github.com/kiln-build/kiln/snapshot"
)

// Option configures New and NewMerge.
type Option func(*options)

type options struct {
	mountDir string
	noLink   bool
}

// WithMountDir sets the directory under which the op mounts snapshots
// (default: the system temporary directory). The worker passes one under
// its root so that a crash leaves nothing in /tmp.
func WithMountDir(dir string) Option { return func(o *options) { o.mountDir = dir } }

// WithoutLinks turns the hard-link fast path off: every file is copied.
// For comparisons in benchmarks and tests.
func WithoutLinks() Option { return func(o *options) { o.noLink = true } }

func newOptions(opts []Option) options {
	o := options{mountDir: filepath.Join(os.TempDir(), "kiln-file-mounts")}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// Op runs a graph.FileOp: its actions, in order, on a new snapshot of its
// base input.
type Op struct {
	def    *graph.FileOp
	dgst   digest.Digest
	snaps  ops.Snapshots
	opts   options
	where  []string // per input: how errors name it
	copies []*copyAction
	nIn    int
}

var _ ops.Op = (*Op)(nil)

// copyAction is a graph.CopyAction with its flags parsed.
type copyAction struct {
	*graph.CopyAction
	desc    string
	chmod   modeFunc
	exclude *patternmatcher.PatternMatcher
}

// New returns the executable form of the file vertex v (v.Op.File set),
// which writes its results through snaps. Invalid definitions (a bad
// --chmod, an exclude pattern that does not compile, a source that climbs
// out of its root) are errors in the invalid-argument class naming the
// instruction.
func New(v *graph.Vertex, snaps ops.Snapshots, opts ...Option) (*Op, error) {
	if v == nil || v.Op.File == nil {
		return nil, errdefs.Invalidf("file op: vertex has no file op")
	}
	if err := v.Op.Validate(len(v.Inputs)); err != nil {
		return nil, errdefs.Invalidf("file op: %v", err)
	}
	o := &Op{def: v.Op.File, dgst: v.Op.Digest(), snaps: snaps, opts: newOptions(opts), nIn: len(v.Inputs)}
	o.where = make([]string, len(v.Inputs))
	for i, in := range v.Inputs {
		o.where[i] = describeInput(in)
	}
	for i, a := range o.def.Actions {
		n := 0
		for _, set := range []bool{a.Copy != nil, a.Mkdir != nil, a.Mkfile != nil, a.Rm != nil, a.Symlink != nil, a.PathCopy != nil} {
			if set {
				n++
			}
		}
		if n != 1 {
			return nil, errdefs.Invalidf("file op: action %d must have exactly one kind set, has %d", i, n)
		}
		if a.PathCopy != nil {
			if err := checkPathCopy(a.PathCopy); err != nil {
				return nil, err
			}
			continue
		}
		if a.Copy == nil {
			continue
		}
		ca, err := parseCopy(a.Copy, o.where[a.Copy.Input])
		if err != nil {
			return nil, err
		}
		o.copies = append(o.copies, ca)
	}
	return o, nil
}

// describeInput names an input vertex in errors.
func describeInput(v *graph.Vertex) string {
	if v != nil && v.Op.Source != nil && v.Op.Source.Local != nil {
		if n := v.Op.Source.Local.Name; n != "" && n != "context" {
			return fmt.Sprintf("the build context %q", n)
		}
		return "the build context"
	}
	return "the source filesystem"
}

func parseCopy(a *graph.CopyAction, where string) (*copyAction, error) {
	verb := "COPY"
	if a.Unpack {
		verb = "ADD"
	}
	ca := &copyAction{CopyAction: a, desc: describe(verb, a.Src, a.Dest)}
	if len(a.Src) == 0 {
		return nil, errdefs.Invalidf("%s: no source", ca.desc)
	}
	if a.Dest == "" {
		return nil, errdefs.Invalidf("%s: no destination", ca.desc)
	}
	for _, s := range a.Src {
		if _, err := cleanRel(s); err != nil {
			return nil, fmt.Errorf("%s: %w", ca.desc, escapeError(s, where))
		}
	}
	if a.Chmod != "" {
		f, err := parseChmod(a.Chmod)
		if err != nil {
			return nil, errdefs.Invalidf("%s: --chmod: %v", ca.desc, err)
		}
		ca.chmod = f
	}
	if len(a.Exclude) > 0 {
		for _, p := range a.Exclude {
			if _, err := patternmatcher.New([]string{p}); err != nil {
				return nil, errdefs.Invalidf("%s: --exclude=%s: %v", ca.desc, p, err)
			}
		}
		pm, err := patternmatcher.New(a.Exclude)
		if err != nil {
			return nil, errdefs.Invalidf("%s: --exclude: %v", ca.desc, err)
		}
		ca.exclude = pm
	}
	return ca, nil
}

// CacheMap implements ops.Op: the op digest, and for each input that
// COPY reads, the source paths it reads (clean, relative to the input's
// root, wildcards kept). An input some COPY reads whole (".") has no
// selectors.
func (o *Op) CacheMap(context.Context) (*ops.CacheMap, error) {
	cm := &ops.CacheMap{Digest: o.dgst}
	srcs := map[int][]string{}
	for _, c := range o.copies {
		srcs[c.Input] = append(srcs[c.Input], c.Src...)
	}
	for _, a := range o.def.Actions {
		if pc := a.PathCopy; pc != nil {
			// LLB paths are absolute: ".." stops at the root.
			srcs[pc.Input] = append(srcs[pc.Input], path.Join("/", pc.Src))
		}
	}
	if len(srcs) == 0 {
		return cm, nil
	}
	deps := make([]ops.Dep, o.nIn)
	whole := make([]bool, o.nIn)
	seen := make([]map[string]bool, o.nIn)
	for i, list := range srcs {
		if seen[i] == nil {
			seen[i] = map[string]bool{}
		}
		for _, s := range list {
			rel, _ := cleanRel(s) // checked in New
			if rel == "" {
				whole[i] = true
				continue
			}
			if !seen[i][rel] {
				seen[i][rel] = true
				deps[i].Selectors = append(deps[i].Selectors, rel)
			}
		}
	}
	for i := range deps {
		if whole[i] {
			deps[i].Selectors = nil
		}
		sort.Strings(deps[i].Selectors)
	}
	cm.Deps = deps
	return cm, nil
}

// Exec implements ops.Op.
func (o *Op) Exec(ctx context.Context, inputs []ops.Ref) (_ ops.Ref, err error) {
	if len(inputs) != o.nIn {
		return nil, errdefs.Invalidf("file op: %d inputs, want %d", len(inputs), o.nIn)
	}
	var parent ops.Ref
	if o.def.Base != graph.NoInput {
		parent = inputs[o.def.Base]
	}
	act, err := o.snaps.New(ctx, parent, "file op")
	if err != nil {
		return nil, err
	}
	defer func() {
		if derr := act.Discard(context.WithoutCancel(ctx)); derr != nil && err == nil {
			err = derr
		}
	}()
	x := &execution{op: o, act: act, inputs: inputs, srcs: map[int]*tree{}}
	defer func() { err = joinErr(err, x.close()) }()
	ci := 0
	for _, a := range o.def.Actions {
		if err := ctx.Err(); err != nil {
			return nil, context.Cause(ctx)
		}
		switch {
		case a.Copy != nil:
			err = x.copy(ctx, o.copies[ci])
			ci++
		case a.Mkdir != nil:
			err = x.mkdir(a.Mkdir)
		case a.Mkfile != nil:
			err = x.mkfile(a.Mkfile)
		case a.Rm != nil:
			err = x.rm(a.Rm)
		case a.Symlink != nil:
			err = x.symlink(a.Symlink)
		case a.PathCopy != nil:
			err = x.pathCopy(ctx, a.PathCopy)
		}
		if err != nil {
			return nil, err
		}
	}
	if err := x.unmountRoot(); err != nil {
		return nil, err
	}
	return act.Commit(ctx)
}

// execution is the state of one Exec: the mounted base and sources.
type execution struct {
	op     *Op
	act    ops.Active
	inputs []ops.Ref

	srcs     map[int]*tree
	releases []func() error

	d       *dest        // the mounted writable root; nil when unmounted
	release func() error // unmounts d
}

// root returns the writable root, mounting it if needed.
func (x *execution) root() (*dest, error) {
	if x.d != nil {
		return x.d, nil
	}
	dir, release, err := mountDir(x.op.opts.mountDir, x.act.Mounts())
	if err != nil {
		return nil, err
	}
	x.d, x.release = newDest(dir), release
	return x.d, nil
}

// unmountRoot unmounts the writable root if it is mounted.
func (x *execution) unmountRoot() error {
	if x.d == nil {
		return nil
	}
	err := x.release()
	x.d, x.release = nil, nil
	return err
}

// source returns the tree of input i, mounting it if needed.
func (x *execution) source(ctx context.Context, i int) (*tree, error) {
	if t, ok := x.srcs[i]; ok {
		return t, nil
	}
	where := x.op.where[i]
	var t *tree
	switch r := x.inputs[i].(type) {
	case nil:
		dir, err := os.MkdirTemp("", "kiln-empty-")
		if err != nil {
			return nil, err
		}
		x.releases = append(x.releases, func() error { return os.Remove(dir) })
		t = &tree{dir: dir, where: where}
	case ops.Dir:
		t = &tree{dir: filepath.Clean(r.Dir()), strict: true, where: where}
	case ops.Mountable:
		mounts, unview, err := r.Mount(ctx)
		if err != nil {
			return nil, err
		}
		dir, unmount, err := mountDir(x.op.opts.mountDir, mounts)
		if err != nil {
			_ = unview()
			return nil, err
		}
		x.releases = append(x.releases, func() error { return joinErr(unmount(), unview()) })
		t = &tree{dir: dir, where: where, layers: snapshot.ViewLayers(mounts)}
	default:
		return nil, errdefs.Invalidf("file op: input %d: a %T cannot be read", i, r)
	}
	x.srcs[i] = t
	return t, nil
}

// close unmounts everything the execution mounted.
func (x *execution) close() error {
	err := x.unmountRoot()
	for i := len(x.releases) - 1; i >= 0; i-- {
		err = joinErr(err, x.releases[i]())
	}
	x.releases = nil
	if err != nil {
		return errors.Join(errors.New("file op: clean up mounts"), err)
	}
	return nil
}
