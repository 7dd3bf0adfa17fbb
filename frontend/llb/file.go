package llb

import (
	"context"
	"strconv"
	"strings"

	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/graph"
)

// fileOp is the conversion state of one LLB file op. Its actions form a
// small graph: an action works on an op input or on an earlier action's
// result, and any action may be an output of the op. Actions that form a
// chain (each result used only by the next action) become one graph
// FileOp; a result used more than once is a vertex of its own.
type fileOp struct {
	o    *opCtx
	f    *pb.FileOp
	n    int // op inputs
	uses []int
	done map[int]*graph.Vertex
	busy map[int]bool
}

// file converts one output of a file op.
func (o *opCtx) file(ctx context.Context, f *pb.FileOp, index int) (*graph.Vertex, error) {
	if o.c.files == nil {
		o.c.files = map[digest.Digest]*fileOp{}
	}
	fo, ok := o.c.files[o.dgst]
	if !ok {
		var err error
		if fo, err = newFileOp(o, f); err != nil {
			return nil, err
		}
		o.c.files[o.dgst] = fo
	}
	for i, a := range f.Actions {
		if int(a.Output) == index && a.Output >= 0 {
			return fo.result(ctx, i)
		}
	}
	return nil, o.errorf("has no output %d", index)
}

func newFileOp(o *opCtx, f *pb.FileOp) (*fileOp, error) {
	if len(f.Actions) == 0 {
		return nil, o.errorf("has no actions")
	}
	fo := &fileOp{o: o, f: f, n: len(o.op.Inputs), uses: make([]int, len(f.Actions)), done: map[int]*graph.Vertex{}, busy: map[int]bool{}}
	for i, a := range f.Actions {
		for _, in := range []int64{a.Input, a.SecondaryInput} {
			if j := int(in) - fo.n; in >= 0 && j >= 0 {
				if j >= i {
					return nil, o.errorf("action %d uses the result of action %d, which does not come before it", i, j)
				}
				fo.uses[j]++
			}
		}
		if a.Output >= 0 {
			fo.uses[i]++
		}
		if a.Action == nil {
			return nil, o.errorf("action %d has no kind", i)
		}
	}
	return fo, nil
}

// result returns the vertex of action i's result.
func (fo *fileOp) result(ctx context.Context, i int) (*graph.Vertex, error) {
	if v, ok := fo.done[i]; ok {
		return v, nil
	}
	if fo.busy[i] {
		return nil, fo.o.errorf("action %d depends on itself", i)
	}
	fo.busy[i] = true
	defer delete(fo.busy, i)
	base, chain, err := fo.chain(ctx, i)
	if err != nil {
		return nil, err
	}
	var ins inputSet
	op := &graph.FileOp{Base: ins.add(base)}
	var names []string
	for _, j := range chain {
		act, name, err := fo.action(ctx, j, &ins)
		if err != nil {
			return nil, err
		}
		if act != nil {
			op.Actions = append(op.Actions, *act)
			names = append(names, name)
		}
	}
	var v *graph.Vertex
	if len(op.Actions) == 0 {
		v = base // nothing left to do (a copy of nothing)
	} else if v, err = fo.o.vertex(graph.Op{File: op}, strings.Join(names, "; "), ins.vs...); err != nil {
		return nil, err
	}
	fo.done[i] = v
	return v, nil
}

// chain returns the base and the actions, in order, that make action i's
// result.
func (fo *fileOp) chain(ctx context.Context, i int) (*graph.Vertex, []int, error) {
	in := fo.f.Actions[i].Input
	if j := int(in) - fo.n; in >= 0 && j >= 0 && fo.uses[j] == 1 {
		base, chain, err := fo.chain(ctx, j)
		return base, append(chain, i), err
	}
	base, err := fo.ref(ctx, in)
	return base, []int{i}, err
}

// ref resolves an action's input index: -1 is an empty filesystem, an op
// input, or an earlier action's result.
func (fo *fileOp) ref(ctx context.Context, in int64) (*graph.Vertex, error) {
	switch {
	case in < 0:
		return nil, nil
	case int(in) < fo.n:
		return fo.o.input(ctx, in)
	}
	return fo.result(ctx, int(in)-fo.n)
}

// action converts action j, adding the inputs it reads to ins. A nil
// action has nothing to do.
func (fo *fileOp) action(ctx context.Context, j int, ins *inputSet) (*graph.FileAction, string, error) {
	a := fo.f.Actions[j]
	o := fo.o
	base := fo.chainInput(j)
	// meta converts the owner and time mkdir, mkfile and symlink share.
	meta := func(c *pb.ChownOpt, ts int64) (*graph.Chown, *int64, error) {
		ch, err := o.chown(c, base)
		if err != nil {
			return nil, nil, err
		}
		t, err := o.timestamp(ts)
		return ch, t, err
	}
	switch x := a.Action.(type) {
	case *pb.FileAction_Mkdir:
		m := x.Mkdir
		ch, ts, err := meta(m.Owner, m.Timestamp)
		if err != nil {
			return nil, "", err
		}
		return &graph.FileAction{Mkdir: &graph.MkdirAction{Path: m.Path, Mode: uint32(m.Mode) & 0o7777, MakeParents: m.MakeParents, Chown: ch, Timestamp: ts}}, "mkdir " + m.Path, nil
	case *pb.FileAction_Mkfile:
		m := x.Mkfile
		ch, ts, err := meta(m.Owner, m.Timestamp)
		if err != nil {
			return nil, "", err
		}
		return &graph.FileAction{Mkfile: &graph.MkfileAction{Path: m.Path, Mode: uint32(m.Mode) & 0o7777, Data: m.Data, Chown: ch, Timestamp: ts}}, "mkfile " + m.Path, nil
	case *pb.FileAction_Rm:
		r := x.Rm
		return &graph.FileAction{Rm: &graph.RmAction{Path: r.Path, AllowNotFound: r.AllowNotFound, AllowWildcard: r.AllowWildcard}}, "rm " + r.Path, nil
	case *pb.FileAction_Symlink:
		l := x.Symlink
		ch, ts, err := meta(l.Owner, l.Timestamp)
		if err != nil {
			return nil, "", err
		}
		return &graph.FileAction{Symlink: &graph.SymlinkAction{Oldpath: l.Oldpath, Newpath: l.Newpath, Chown: ch, Timestamp: ts}}, "symlink " + l.Newpath + " -> " + l.Oldpath, nil
	case *pb.FileAction_Copy:
		return fo.copyAction(ctx, a, x.Copy, base, ins)
	}
	return nil, "", o.errorf("action %d: kind %T is not supported", j, a.Action)
}

func (fo *fileOp) copyAction(ctx context.Context, a *pb.FileAction, c *pb.FileActionCopy, base int64, ins *inputSet) (*graph.FileAction, string, error) {
	o := fo.o
	name := "copy " + c.Src + " " + c.Dest
	src, err := fo.ref(ctx, a.SecondaryInput)
	if err != nil {
		return nil, "", err
	}
	if src == nil {
		if c.AllowWildcard && c.AllowEmptyWildcard {
			return nil, "", nil // nothing can match in an empty filesystem
		}
		return nil, "", o.errorf("%s: the source is an empty filesystem, %s not found", name, c.Src)
	}
	ch, err := o.chown(c.Owner, base)
	if err != nil {
		return nil, "", err
	}
	ts, err := o.timestamp(c.Timestamp)
	if err != nil {
		return nil, "", err
	}
	pc := &graph.PathCopyAction{
		Input: ins.add(src), Src: c.Src, Dest: c.Dest, Chown: ch, ModeStr: c.ModeStr,
		FollowSymlinks: c.FollowSymlink, DirContents: c.DirCopyContents, Unpack: c.AttemptUnpackDockerCompatibility,
		CreateDestPath: c.CreateDestPath, Wildcard: c.AllowWildcard, AllowEmptyWildcard: c.AllowEmptyWildcard,
		Include: c.IncludePatterns, Exclude: c.ExcludePatterns, RequiredPaths: c.RequiredPaths,
		ReplaceExisting: c.AlwaysReplaceExistingDestPaths, Timestamp: ts,
	}
	if c.Mode >= 0 && c.ModeStr == "" {
		m := uint32(c.Mode) & 0o7777
		pc.Mode = &m
	}
	if c.Src == "" || c.Dest == "" {
		return nil, "", o.errorf("%s: copy needs a source and a destination path", name)
	}
	return &graph.FileAction{PathCopy: pc}, name, nil
}

// chainInput returns the op input (or -1) that action j's chain of
// actions starts from.
func (fo *fileOp) chainInput(j int) int64 {
	in := fo.f.Actions[j].Input
	for in >= int64(fo.n) {
		in = fo.f.Actions[int(in)-fo.n].Input
	}
	return in
}

// chown converts an owner. BuildKit's client looks names up in the
// filesystem the file op starts from (base); Kiln looks them up in the
// filesystem the action writes to, which is that filesystem unless an
// earlier action of the same op rewrote /etc/passwd. A lookup anywhere
// else is an error.
func (o *opCtx) chown(c *pb.ChownOpt, base int64) (*graph.Chown, error) {
	if c == nil || (c.User == nil && c.Group == nil) {
		return nil, nil
	}
	id := func(u *pb.UserOpt, what string) (string, bool, error) {
		switch x := u.GetUser().(type) {
		case *pb.UserOpt_ByName:
			if x.ByName.Input != base {
				return "", false, o.errorf("%s %q is looked up in input %d, not in the filesystem written to (%d): not supported", what, x.ByName.Name, x.ByName.Input, base)
			}
			return x.ByName.Name, false, nil
		case *pb.UserOpt_ByID:
			return strconv.FormatUint(uint64(x.ByID), 10), true, nil
		}
		return "", false, o.errorf("%s has no name or id", what)
	}
	ch := &graph.Chown{User: "0"}
	numericUser := true
	if c.User != nil {
		u, num, err := id(c.User, "user")
		if err != nil {
			return nil, err
		}
		ch.User, numericUser = u, num
	}
	switch {
	case c.Group != nil:
		g, _, err := id(c.Group, "group")
		if err != nil {
			return nil, err
		}
		ch.Group = g
	case numericUser:
		// A user given by id gets the same group id (BuildKit's rule),
		// not the primary group /etc/passwd names.
		ch.Group = ch.User
	}
	return ch, nil
}

// timestamp converts LLB's nanosecond time (-1: unset) to Kiln's seconds.
func (o *opCtx) timestamp(ns int64) (*int64, error) {
	if ns == -1 {
		return nil, nil
	}
	if ns%1e9 != 0 {
		return nil, o.errorf("timestamp %d has sub-second precision, which is not supported", ns)
	}
	s := ns / 1e9
	return &s, nil
}
