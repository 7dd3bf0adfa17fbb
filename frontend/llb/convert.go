package llb

import (
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/graph"
)

// maxOps bounds the ops of one definition (nested build ops included), so
// that a hostile definition cannot make the daemon build an unbounded
// graph.
const maxOps = 100000

// Options tune a conversion. The zero value converts plain definitions.
type Options struct {
	// Local, if set, is asked about every local source. It may change
	// src; a non-nil vertex replaces the source (the gateway serves a
	// Dockerfile it holds in memory this way).
	Local func(src *graph.LocalSource) (*graph.Vertex, error)
	// ReadFile returns the file at path in the result of v (solving v
	// first). Build ops need it to read their definition from their
	// builder input; without it a build op is an error.
	ReadFile func(ctx context.Context, v *graph.Vertex, path string) ([]byte, error)
}

// OutputID names one output of an LLB op: the op's digest (sha256 of its
// marshalled bytes) and the output index.
type OutputID struct {
	Op    digest.Digest
	Index int
}

func (o OutputID) String() string { return fmt.Sprintf("%s:%d", o.Op, o.Index) }

// Result is a converted definition.
type Result struct {
	// Root is the vertex of the definition's result (the input of its
	// terminal op); nil means an empty filesystem (llb.Scratch()).
	Root *graph.Vertex
	// Outputs maps every LLB output the conversion reached to its vertex
	// (nil for an empty filesystem), so callers can relate BuildKit's
	// vertex digests (progress, results) to Kiln's.
	Outputs map[OutputID]*graph.Vertex
}

// Convert turns def into Kiln's graph. A nil or empty definition is an
// empty filesystem. Errors are in the invalid-argument class and name the
// op that could not be converted.
func Convert(ctx context.Context, def *pb.Definition, opts Options) (*Result, error) {
	c := &converter{opts: opts, res: &Result{Outputs: map[OutputID]*graph.Vertex{}}}
	root, err := c.definition(ctx, def, 0)
	if err != nil {
		return nil, err
	}
	c.res.Root = root
	return c.res, nil
}

// converter is the state of one Convert: the parsed definition (several,
// with build ops) and what is done.
type converter struct {
	opts  Options
	res   *Result
	nOps  int
	files map[digest.Digest]*fileOp // file ops being split into outputs
}

// defn is one parsed definition.
type defn struct {
	ops      map[digest.Digest]*pb.Op
	meta     map[digest.Digest]*pb.OpMetadata
	source   *pb.Source
	visiting map[digest.Digest]bool
}

// definition converts one definition and returns its root.
func (c *converter) definition(ctx context.Context, def *pb.Definition, depth int) (*graph.Vertex, error) {
	if def == nil || len(def.Def) == 0 {
		return nil, nil
	}
	if depth > 8 {
		return nil, errdefs.Invalidf("llb: build ops nest more than 8 deep")
	}
	d := &defn{ops: map[digest.Digest]*pb.Op{}, meta: map[digest.Digest]*pb.OpMetadata{}, source: def.Source, visiting: map[digest.Digest]bool{}}
	var last digest.Digest
	for i, b := range def.Def {
		c.nOps++
		if c.nOps > maxOps {
			return nil, errdefs.Invalidf("llb: the definition has more than %d ops", maxOps)
		}
		op := &pb.Op{}
		if err := op.UnmarshalVT(b); err != nil {
			return nil, errdefs.Invalidf("llb: op %d of the definition cannot be decoded: %v", i, err)
		}
		last = digest.FromBytes(b)
		d.ops[last] = op
	}
	for k, m := range def.Metadata {
		d.meta[digest.Digest(k)] = m
	}
	term := d.ops[last]
	if term.Op != nil || len(term.Inputs) == 0 {
		return nil, errdefs.Invalidf("llb: the definition's last op must be its terminal (no op, one input naming the result)")
	}
	in := term.Inputs[0]
	return c.output(ctx, d, OutputID{Op: digest.Digest(in.Digest), Index: int(in.Index)})
}

// output returns the vertex of one op output (nil: empty filesystem).
func (c *converter) output(ctx context.Context, d *defn, id OutputID) (*graph.Vertex, error) {
	if v, ok := c.res.Outputs[id]; ok {
		return v, nil
	}
	op, ok := d.ops[id.Op]
	if !ok {
		return nil, errdefs.Invalidf("llb: input %s is not in the definition", id.Op)
	}
	if d.visiting[id.Op] {
		return nil, errdefs.Invalidf("llb: op %s depends on itself", id.Op)
	}
	if err := ctx.Err(); err != nil {
		return nil, context.Cause(ctx)
	}
	d.visiting[id.Op] = true
	defer delete(d.visiting, id.Op)

	o := &opCtx{c: c, d: d, dgst: id.Op, op: op}
	var (
		v   *graph.Vertex
		err error
	)
	switch x := op.Op.(type) {
	case *pb.Op_Source:
		v, err = o.source(x.Source, id.Index)
	case *pb.Op_Exec:
		v, err = o.exec(ctx, x.Exec, id.Index)
	case *pb.Op_File:
		v, err = o.file(ctx, x.File, id.Index)
	case *pb.Op_Merge:
		v, err = o.merge(ctx, x.Merge, id.Index)
	case *pb.Op_Diff:
		v, err = o.diff(ctx, x.Diff, id.Index)
	case *pb.Op_Build:
		v, err = o.build(ctx, x.Build, id.Index)
	case nil:
		err = o.errorf("an op with nothing to do cannot be an input")
	default:
		err = o.errorf("%s ops are not supported", opKind(op))
	}
	if err != nil {
		return nil, err
	}
	c.res.Outputs[id] = v
	return v, nil
}

// opKind names the kind of op for messages.
func opKind(op *pb.Op) string {
	switch op.Op.(type) {
	case *pb.Op_Source:
		return "source"
	case *pb.Op_Exec:
		return "exec"
	case *pb.Op_File:
		return "file"
	case *pb.Op_Merge:
		return "merge"
	case *pb.Op_Diff:
		return "diff"
	case *pb.Op_Build:
		return "build"
	case *pb.Op_Passthrough:
		return "passthrough"
	}
	return "empty"
}

// opCtx is the conversion of one op.
type opCtx struct {
	c    *converter
	d    *defn
	dgst digest.Digest
	op   *pb.Op
}

// input returns the vertex of the op's input i (nil for an empty
// filesystem).
func (o *opCtx) input(ctx context.Context, i int64) (*graph.Vertex, error) {
	if i < 0 || int(i) >= len(o.op.Inputs) {
		return nil, o.errorf("refers to input %d, the op has %d", i, len(o.op.Inputs))
	}
	in := o.op.Inputs[i]
	return o.c.output(ctx, o.d, OutputID{Op: digest.Digest(in.Digest), Index: int(in.Index)})
}

// platform returns the op's platform (nil: the daemon's).
func (o *opCtx) platform() *ocispec.Platform {
	p := o.op.Platform
	if p == nil || p.OS == "" {
		return nil
	}
	return &ocispec.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant, OSVersion: p.OSVersion}
}

// meta returns the vertex metadata of the op: its name (llb.customname, or
// fallback), location, step id and cache policy.
func (o *opCtx) meta(fallback string) graph.Meta {
	m := graph.Meta{Name: fallback}
	md := o.d.meta[o.dgst]
	if md != nil {
		if n := md.Description["llb.customname"]; n != "" {
			m.Name = n
		}
		m.IgnoreCache = md.IgnoreCache
	}
	m.Location = o.location()
	m.StepID = stepID(m)
	return m
}

// stepID says which step of earlier builds a vertex is, so that a miss can
// be explained against it: its place in the source (file, line and, from a
// name like BuildKit's "[build 2/5] RUN make", the stage), or without one
// its name minus that "[stage n/m]" prefix (the counter moves when steps are
// added before it). Unnamed, unplaced vertices have none.
func stepID(m graph.Meta) string {
	name, stage := m.Name, ""
	if strings.HasPrefix(name, "[") {
		if head, rest, ok := strings.Cut(name[1:], "] "); ok {
			name = rest
			stage, _, _ = strings.Cut(head, " ")
		}
	}
	switch {
	case m.Location != nil:
		return fmt.Sprintf("llb\x00%s\x00%d\x00%s", m.Location.File, m.Location.Start, stage)
	case m.Name != "":
		return "llb\x00" + name
	}
	return ""
}

// location returns where the op comes from, if the definition says.
func (o *opCtx) location() *graph.Location {
	s := o.d.source
	if s == nil {
		return nil
	}
	locs := s.Locations[o.dgst.String()]
	if locs == nil {
		return nil
	}
	for _, l := range locs.Locations {
		if l.SourceIndex < 0 || int(l.SourceIndex) >= len(s.Infos) || len(l.Ranges) == 0 {
			continue
		}
		r := l.Ranges[0]
		if r.Start == nil {
			continue
		}
		loc := &graph.Location{File: s.Infos[l.SourceIndex].Filename, Start: int(r.Start.Line), End: int(r.Start.Line)}
		if r.End != nil && r.End.Line >= r.Start.Line {
			loc.End = int(r.End.Line)
		}
		return loc
	}
	return nil
}

// errorf returns an invalid-argument error naming the op and, when the
// definition says where it comes from, its file and line.
func (o *opCtx) errorf(format string, args ...any) error {
	name := o.meta("").Name
	what := fmt.Sprintf("llb %s op %s", opKind(o.op), shortDigest(o.dgst))
	if name != "" {
		what += fmt.Sprintf(" (%q)", name)
	}
	err := errdefs.Invalidf("%s: %s", what, fmt.Sprintf(format, args...))
	if l := o.location(); l != nil {
		return &errdefs.SourceError{File: l.File, Range: errdefs.Range{Start: l.Start, End: l.End}, Err: err}
	}
	return err
}

func shortDigest(d digest.Digest) string {
	s := d.Encoded()
	if len(s) > 12 {
		s = s[:12]
	}
	return s
}

// vertex makes a vertex of op with the op's platform and metadata, and
// validates it.
func (o *opCtx) vertex(op graph.Op, name string, inputs ...*graph.Vertex) (*graph.Vertex, error) {
	op.Platform = o.platform()
	if err := op.Validate(len(inputs)); err != nil {
		return nil, o.errorf("%v", err)
	}
	return graph.NewVertex(op, o.meta(name), inputs...), nil
}

// inputSet collects the distinct non-empty input vertices of a graph op
// and gives their indexes.
type inputSet struct {
	vs  []*graph.Vertex
	idx map[*graph.Vertex]int
}

// add returns the index of v among the inputs, or graph.NoInput for an
// empty filesystem.
func (s *inputSet) add(v *graph.Vertex) int {
	if v == nil {
		return graph.NoInput
	}
	if s.idx == nil {
		s.idx = map[*graph.Vertex]int{}
	}
	if i, ok := s.idx[v]; ok {
		return i
	}
	s.vs = append(s.vs, v)
	s.idx[v] = len(s.vs) - 1
	return len(s.vs) - 1
}

// merge converts a merge op: its inputs stacked in order.
func (o *opCtx) merge(ctx context.Context, m *pb.MergeOp, index int) (*graph.Vertex, error) {
	if index != 0 {
		return nil, o.errorf("has one output, output %d was asked for", index)
	}
	var ins []*graph.Vertex
	for _, mi := range m.Inputs {
		v, err := o.input(ctx, mi.Input)
		if err != nil {
			return nil, err
		}
		if v != nil {
			ins = append(ins, v)
		}
	}
	switch len(ins) {
	case 0:
		return nil, nil
	case 1:
		return ins[0], nil
	}
	return o.vertex(graph.Op{Merge: &graph.MergeOp{}}, fmt.Sprintf("merge (%d inputs)", len(ins)), ins...)
}

// diff converts a diff op. A diff from an empty lower is the upper itself.
func (o *opCtx) diff(ctx context.Context, d *pb.DiffOp, index int) (*graph.Vertex, error) {
	if index != 0 {
		return nil, o.errorf("has one output, output %d was asked for", index)
	}
	if d.Lower == nil || d.Upper == nil {
		return nil, o.errorf("lower and upper must both be set")
	}
	var lower, upper *graph.Vertex
	var err error
	if d.Lower.Input >= 0 {
		if lower, err = o.input(ctx, d.Lower.Input); err != nil {
			return nil, err
		}
	}
	if d.Upper.Input >= 0 {
		if upper, err = o.input(ctx, d.Upper.Input); err != nil {
			return nil, err
		}
	}
	switch {
	case lower == nil:
		return upper, nil
	case upper == nil:
		return nil, o.errorf("a diff onto an empty upper (deleting all of lower) is not supported")
	case lower == upper:
		return nil, nil
	}
	return o.vertex(graph.Op{Diff: &graph.DiffOp{}}, "diff", lower, upper)
}

// build converts a build op (BuildKit's llbbuild): the definition file in
// its definition input is read, converted and used in its place.
func (o *opCtx) build(ctx context.Context, b *pb.BuildOp, index int) (*graph.Vertex, error) {
	if index != 0 {
		return nil, o.errorf("has one output, output %d was asked for", index)
	}
	if b.Builder != int64(pb.LLBBuilder) {
		return nil, o.errorf("builder %d is not supported (only the LLB builder)", b.Builder)
	}
	if b.Def != nil {
		return nil, o.errorf("build op with an inline definition is not supported")
	}
	in, ok := b.Inputs[pb.LLBDefinitionInput]
	if !ok || in == nil || len(b.Inputs) != 1 {
		return nil, o.errorf("a build op needs exactly the input %q", pb.LLBDefinitionInput)
	}
	if o.c.opts.ReadFile == nil {
		return nil, o.errorf("build ops need a daemon that can read their definition file (not available here)")
	}
	src, err := o.input(ctx, in.Input)
	if err != nil {
		return nil, err
	}
	name := b.Attrs[pb.AttrLLBDefinitionFilename]
	if name == "" {
		name = pb.LLBDefaultDefinitionFile
	}
	dt, err := o.c.opts.ReadFile(ctx, src, path.Join("/", name))
	if err != nil {
		return nil, o.errorf("read definition %s: %v", name, err)
	}
	inner := &pb.Definition{}
	if err := inner.UnmarshalVT(dt); err != nil {
		return nil, o.errorf("definition %s cannot be decoded: %v", name, err)
	}
	v, err := o.c.definition(ctx, inner, len(o.d.visiting))
	if err != nil {
		return nil, fmt.Errorf("build op %s: %w", shortDigest(o.dgst), err)
	}
	return v, nil
}
