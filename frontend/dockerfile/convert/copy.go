package convert

import (
	"net/url"
	"path"
	"strings"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/frontend/dockerfile/instructions"
	"github.com/kiln-build/kiln/graph"
)

// copyRequest is a COPY or ADD, expanded.
type copyRequest struct {
	cmd   instructions.Command
	sd    instructions.SourcesAndDest
	flags instructions.CopyFlags
	from  string                   // COPY --from
	add   *instructions.AddCommand // set for ADD
}

func (b *build) dispatchCopy(sp step, r copyRequest) error {
	st := sp.st
	loc := r.cmd.Loc()
	kw := r.cmd.Name()
	dest := st.resolvePath(r.sd.Dest)
	text := b.displayText(st, loc)
	name := sp.name(text)
	prev := st.root

	var in inputs
	base := graph.NoInput
	if !r.flags.Link {
		base = in.add(st.root)
	}
	newCopy := func(input int, src []string) *graph.CopyAction {
		a := &graph.CopyAction{Input: input, Src: src, Dest: dest, Chmod: r.flags.Chmod,
			Chown: parseChown(r.flags.Chown), Parents: r.flags.Parents, Link: r.flags.Link}
		if len(r.flags.Excludes) > 0 {
			a.Exclude = append([]string(nil), r.flags.Excludes...)
		}
		return a
	}
	var actions []graph.FileAction
	var local []string
	srcIdx := 0
	for _, s := range r.sd.Sources {
		kind := instructions.SourceLocal
		var as instructions.AddSource
		if r.add != nil {
			as = instructions.ParseAddSource(s)
			kind = as.Kind
		} else if lower := strings.ToLower(s); strings.HasPrefix(lower, "http://") || strings.HasPrefix(lower, "https://") {
			return loc.Errorf("COPY does not download URLs (%s); use ADD for a remote file", s)
		}
		switch kind {
		case instructions.SourceURL:
			v, file, err := b.httpVertex(st, r.add, as, name, loc, sp.key, srcIdx)
			if err != nil {
				return err
			}
			a := newCopy(in.add(v), []string{file})
			a.Unpack = r.add.Unpacks(as)
			actions = append(actions, graph.FileAction{Copy: a})
		case instructions.SourceGit:
			if r.add.Checksum != "" {
				// GitSource cannot verify a commit yet; ignoring the
				// checksum would be worse than refusing it.
				return loc.Errorf("ADD --checksum is not supported for Git sources yet (%s)", s)
			}
			g := &graph.GitSource{Remote: as.Remote, Ref: as.Ref, Subdir: as.Subdir, KeepGitDir: r.add.KeepGitDir}
			v := graph.NewVertex(graph.Op{Source: &graph.SourceOp{Git: g}}, b.meta(st, name, loc, sp.key+"/src-"+itoa(srcIdx)))
			actions = append(actions, graph.FileAction{Copy: newCopy(in.add(v), []string{"."})})
		default:
			if r.flags.Parents {
				local = append(local, s)
			} else {
				local = append(local, cleanSource(s))
			}
		}
		srcIdx++
	}
	if len(local) > 0 {
		src := b.contextVertex()
		if r.from != "" {
			v, err := b.sourceVertex(st, st.s.froms[r.from])
			if err != nil {
				return err
			}
			if v == nil {
				return loc.Errorf("COPY --from=%s: nothing to copy: its filesystem is empty (FROM scratch with no changes)", r.from)
			}
			src = v
		}
		a := newCopy(in.add(src), local)
		a.FollowSymlinks = true
		if r.add != nil {
			a.Unpack = r.add.Unpacks(instructions.AddSource{Kind: instructions.SourceLocal})
		}
		actions = append([]graph.FileAction{{Copy: a}}, actions...)
	}
	if len(r.sd.Contents) > 0 {
		inline := inlineDocs(r.sd.Contents)
		var names []string
		for _, c := range r.sd.Contents {
			names = append(names, c.Path)
		}
		actions = append(actions, graph.FileAction{Copy: newCopy(in.add(inline), names)})
	}

	plat := platformPtr(st.platform)
	if base == graph.NoInput {
		plat = nil // independent of what it lands on: shared across platforms
	}
	cp := graph.NewVertex(graph.Op{File: &graph.FileOp{Base: base, Actions: actions}, Platform: plat}, b.stepMeta(st, name, loc, sp.key), in.list...)
	st.root = cp
	if r.flags.Link && prev != nil {
		merge := b.stepMeta(st, st.numbered(st.step, "LINK "+text), loc, sp.key+"/link")
		st.root = graph.NewVertex(graph.Op{Merge: &graph.MergeOp{}}, merge, prev, cp)
	}
	st.addHistory(copyHistory(kw, r)+" # buildkit", true)
	return nil
}

// copyHistory is created_by of a COPY or ADD as BuildKit writes it.
func copyHistory(kw string, r copyRequest) string {
	parts := []string{kw}
	if r.flags.Parents {
		parts = append(parts, "--parents")
	}
	if r.flags.Chown != "" {
		parts = append(parts, "--chown="+r.flags.Chown)
	}
	if r.flags.Chmod != "" {
		parts = append(parts, "--chmod="+r.flags.Chmod)
	}
	parts = append(parts, r.sd.Sources...)
	for _, c := range r.sd.Contents {
		parts = append(parts, "<<"+c.Path)
	}
	return strings.Join(append(parts, r.sd.Dest), " ")
}

// inlineDocs is the filesystem holding the heredoc sources of a COPY, one
// file per heredoc at the root, copied from like any source.
func inlineDocs(docs []instructions.SourceContent) *graph.Vertex {
	var actions []graph.FileAction
	for _, d := range docs {
		actions = append(actions, graph.FileAction{Mkfile: &graph.MkfileAction{Path: "/" + d.Path, Mode: 0o644, Data: []byte(d.Data)}})
	}
	return graph.NewVertex(graph.Op{File: &graph.FileOp{Base: graph.NoInput, Actions: actions}}, graph.Meta{Name: "[internal] preparing inline document"})
}

// httpVertex is the download of an ADD URL source; file is the name of
// the downloaded file in its result.
func (b *build) httpVertex(st *stageState, add *instructions.AddCommand, as instructions.AddSource, name string, loc instructions.Location, key string, idx int) (*graph.Vertex, string, error) {
	file := "__unnamed__"
	if u, err := url.Parse(as.Remote); err == nil {
		if base := path.Base(u.Path); base != "." && base != "/" && base != "" {
			file = base
		}
	}
	h := &graph.HTTPSource{URL: as.Remote, Filename: file}
	if add.Checksum != "" {
		d, err := digest.Parse(add.Checksum)
		if err != nil {
			return nil, "", loc.Errorf("ADD --checksum=%s: %v", add.Checksum, err)
		}
		h.Checksum = d
	}
	v := graph.NewVertex(graph.Op{Source: &graph.SourceOp{HTTP: h}}, b.meta(st, name, loc, key+"/src-"+itoa(idx)))
	return v, file, nil
}

func (b *build) dispatchWorkdir(sp step, c *instructions.WorkdirCommand) error {
	st := sp.st
	// As BuildKit: an absolute path is kept as written (a trailing "/"
	// included), a relative one is joined to the current directory.
	wd := c.Path
	if !path.IsAbs(wd) {
		wd = path.Join(st.workdir(), wd)
	}
	st.img.Config.WorkingDir = wd
	if path.Clean(wd) == "/" {
		st.step++ // counted, but makes no vertex
		st.addHistory("WORKDIR "+wd, false)
		return nil
	}
	var in inputs
	mkdir := &graph.MkdirAction{Path: path.Clean(wd), Mode: 0o755, MakeParents: true, Chown: parseChown(st.img.Config.User)}
	op := graph.Op{File: &graph.FileOp{Base: in.add(st.root), Actions: []graph.FileAction{{Mkdir: mkdir}}}, Platform: platformPtr(st.platform)}
	name := sp.name(b.displayText(st, c.Location))
	st.root = graph.NewVertex(op, b.stepMeta(st, name, c.Location, sp.key), in.list...)
	st.addHistory("WORKDIR "+wd, true)
	return nil
}

// sourceVertex returns the vertex a --from or mount from= source reads.
func (b *build) sourceVertex(st *stageState, src source) (*graph.Vertex, error) {
	switch src.kind {
	case srcStage:
		return src.stage.state.root, nil
	case srcScratch:
		return nil, nil
	case srcLocal:
		return b.localVertex(src.local), nil
	case srcImage:
		res, err := b.c.images.lookup(src)
		if err != nil {
			return nil, err
		}
		return imageVertex(res.ref, src.plat, graph.Meta{Name: "FROM " + res.ref}), nil
	}
	return b.contextVertex(), nil
}

// contextVertex is the main build context, one vertex shared by every
// step that reads it.
func (b *build) contextVertex() *graph.Vertex {
	if b.context == nil {
		b.context = graph.NewVertex(graph.Op{Source: &graph.SourceOp{Local: &graph.LocalSource{
			Name:            b.c.req.ContextName,
			ExcludePatterns: b.c.exclude,
			SharedKeyHint:   b.c.req.SharedKeyHint,
		}}}, graph.Meta{Name: "[internal] load build context"})
	}
	return b.context
}

// localVertex is a named local context.
func (b *build) localVertex(name string) *graph.Vertex {
	if v, ok := b.locals[name]; ok {
		return v
	}
	v := graph.NewVertex(graph.Op{Source: &graph.SourceOp{Local: &graph.LocalSource{Name: name}}},
		graph.Meta{Name: "[context " + name + "] load from client"})
	b.locals[name] = v
	return v
}

// imageVertex is the root filesystem of a pinned image for a platform.
func imageVertex(ref string, p ocispec.Platform, meta graph.Meta) *graph.Vertex {
	return graph.NewVertex(graph.Op{Source: &graph.SourceOp{Image: &graph.ImageSource{Ref: ref}}, Platform: platformPtr(p)}, meta)
}

// parseChown turns "user[:group]" into a graph.Chown; "" gives nil.
func parseChown(s string) *graph.Chown {
	if s == "" {
		return nil
	}
	u, g, _ := strings.Cut(s, ":")
	return &graph.Chown{User: u, Group: g}
}

// cleanSource is a source path relative to its root, cleaned: "./a/../b"
// is "b", "/" and "." are ".". A path cannot climb out of its root.
func cleanSource(s string) string {
	c := strings.TrimPrefix(path.Clean("/"+s), "/")
	if c == "" {
		return "."
	}
	return c
}

func platformPtr(p ocispec.Platform) *ocispec.Platform {
	return &p
}
