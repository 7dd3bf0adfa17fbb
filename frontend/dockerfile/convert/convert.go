package convert

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/core/imageconfig"
	"github.com/kiln-build/kiln/frontend"
	"github.com/kiln-build/kiln/frontend/dockerfile/instructions"
	"github.com/kiln-build/kiln/frontend/dockerfile/shell"
	"github.com/kiln-build/kiln/graph"
)

// Converter converts one parsed Dockerfile for the platforms of one
// request. Create it with New; it is safe for concurrent use.
type Converter struct {
	df      *instructions.Dockerfile
	req     frontend.Request
	lex     shell.Lex
	exclude []string // parsed .dockerignore
	target  int      // index of the target stage
	images  *resolveCache
	// maxExecData is MaxExecData unless a test lowers it.
	maxExecData int
}

// New checks the request against the Dockerfile (the target stage exists,
// .dockerignore parses) and returns a Converter.
func New(df *instructions.Dockerfile, req frontend.Request) (*Converter, error) {
	if len(df.Stages) == 0 {
		return nil, &errdefs.SourceError{File: df.Name, Err: errdefs.Invalidf("dockerfile contains no stages to build")}
	}
	c := &Converter{df: df, req: req, lex: shell.Lex{Escape: df.Directives.Escape}, target: len(df.Stages) - 1}
	if req.Target != "" {
		st, ok := df.StageByName(req.Target)
		if !ok {
			return nil, targetError(df, req.Target)
		}
		c.target = st.Index
	}
	if c.req.BuildPlatform.OS == "" {
		c.req.BuildPlatform = platforms.DefaultSpec()
	}
	c.req.BuildPlatform = platforms.Normalize(c.req.BuildPlatform)
	if c.req.ContextName == "" {
		c.req.ContextName = "context"
	}
	var err error
	if c.exclude, err = ParseDockerignore(req.Dockerignore); err != nil {
		return nil, err
	}
	c.images = newResolveCache(req.Resolver)
	return c, nil
}

// targetError is the error for a --target that names no stage.
func targetError(df *instructions.Dockerfile, target string) error {
	var names []string
	for _, s := range df.Stages {
		if s.Name != "" {
			names = append(names, s.Name)
		}
	}
	msg := fmt.Sprintf("target stage %q could not be found", target)
	if len(names) == 0 {
		return errdefs.Invalidf("%s (no stage has a name; name one with FROM image AS name)", msg)
	}
	hint := ""
	if s, ok := suggest(strings.ToLower(target), names); ok {
		hint = "did you mean " + s + "?; "
	}
	return errdefs.Invalidf("%s (%sstages: %s)", msg, hint, strings.Join(names, ", "))
}

// Platforms returns the platforms the request asks for: req.Platforms, or
// the build platform when it names none.
func (c *Converter) Platforms() []ocispec.Platform {
	if len(c.req.Platforms) == 0 {
		return []ocispec.Platform{c.req.BuildPlatform}
	}
	out := make([]ocispec.Platform, len(c.req.Platforms))
	for i, p := range c.req.Platforms {
		out[i] = platforms.Normalize(p)
	}
	return out
}

// Warnings returns the lint findings of the Dockerfile itself.
func (c *Converter) Warnings() []frontend.Warning {
	var out []frontend.Warning
	for _, w := range c.df.Warnings {
		out = append(out, frontend.Warning{Rule: w.Rule, Message: w.Message, File: c.df.Name, Range: w.Range})
	}
	return out
}

// Convert converts the target stage for platform. The warnings are those
// of this conversion (build args no needed stage consumed).
func (c *Converter) Convert(ctx context.Context, platform ocispec.Platform) (*frontend.Image, []frontend.Warning, error) {
	b := &build{
		c:        c,
		platform: platforms.Normalize(platform),
		locals:   map[string]*graph.Vertex{},
		consumed: map[string]bool{},
		multi:    len(c.req.Platforms) > 1,
	}
	if err := b.setGlobals(); err != nil {
		return nil, nil, err
	}
	if err := b.setupStages(); err != nil {
		return nil, nil, err
	}
	target := b.stages[c.target]
	reach, err := b.resolveReachable(ctx, target)
	if err != nil {
		return nil, nil, err
	}
	for _, s := range b.stages {
		if reach[s] {
			if err := b.convertStage(s); err != nil {
				return nil, nil, err
			}
		}
	}
	img := b.finalImage(target)
	return img, b.unusedArgWarnings(), nil
}

// build is the state of one Convert call.
type build struct {
	c        *Converter
	platform ocispec.Platform // the target platform
	multi    bool             // several platforms requested: names carry the platform
	globals  map[string]string
	stages   []*stage
	context  *graph.Vertex            // the main build context, made on first use
	locals   map[string]*graph.Vertex // named local contexts by name
	consumed map[string]bool          // build args some ARG declared
	execData int                      // bytes of RUN args and env so far (MaxExecData)
}

// sourceKind says what a FROM, COPY --from or mount from= refers to.
type sourceKind int

const (
	srcContext sourceKind = iota // the main build context
	srcScratch                   // an empty filesystem
	srcStage                     // an earlier stage
	srcImage                     // an image reference
	srcLocal                     // a named local context
)

// source is what a FROM, COPY --from or RUN --mount from= refers to.
type source struct {
	kind  sourceKind
	stage *stage
	ref   string           // srcImage: the normalised reference
	local string           // srcLocal: the LocalSource name
	plat  ocispec.Platform // srcImage: the platform to resolve for
	loc   instructions.Location
	// what and name say, for errors, which instruction referred to it and
	// by what name ("FROM", "golang"; "COPY --from", "biuld").
	what, name string
}

// stage is one stage of the Dockerfile during a conversion.
type stage struct {
	st       *instructions.Stage
	from     *instructions.FromCommand // expanded
	name     string                    // display name: the AS name or "stage-N"
	platform ocispec.Platform
	base     source // what FROM refers to
	replaced bool   // a named context replaces the whole stage
	// triggers are the ONBUILD triggers that fire at the start of the
	// stage; triggersSet tells that they were collected.
	triggers    []instructions.Command
	triggersSet bool
	// froms are the sources of the stage's COPY --from and mount from=
	// values, by value.
	froms map[string]source
	done  bool
	state *stageState // the result once converted
}

// setupStages expands every stage's FROM with the global ARGs and works out
// what it is based on.
func (b *build) setupStages() error {
	for _, st := range b.c.df.Stages {
		ex := shell.NewExpander(b.c.lex, shell.Map(b.globals))
		from, err := st.From.Expand(ex)
		if err != nil {
			return err
		}
		s := &stage{st: st, from: from, name: st.Name, platform: b.platform}
		if s.name == "" {
			s.name = "stage-" + strconv.Itoa(st.Index)
		}
		if from.Platform != "" {
			p, err := platforms.Parse(from.Platform)
			if err != nil {
				return from.Errorf("FROM --platform=%s: invalid platform %q: %v", st.From.Platform, from.Platform, err)
			}
			s.platform = platforms.Normalize(p)
		}
		if nc, ok := b.c.req.NamedContexts[st.Name]; ok && st.Name != "" {
			s.replaced = true
			s.base = b.namedSource(nc, s.platform, from.Location)
		} else {
			s.base, err = b.fromSource(s, from)
			if err != nil {
				return err
			}
		}
		if s.base.kind == srcStage && from.Platform == "" {
			s.platform = s.base.stage.platform
		}
		b.stages = append(b.stages, s)
	}
	return nil
}

// fromSource works out what FROM refers to: an earlier stage, scratch, a
// named context or an image.
func (b *build) fromSource(s *stage, from *instructions.FromCommand) (source, error) {
	name := from.BaseName
	for _, prev := range b.stages {
		if prev.st.Name != "" && strings.EqualFold(prev.st.Name, name) {
			return source{kind: srcStage, stage: prev, loc: from.Location}, nil
		}
	}
	if strings.EqualFold(name, "scratch") {
		return source{kind: srcScratch, loc: from.Location}, nil
	}
	if nc, ok := b.namedContext(name); ok {
		return b.namedSource(nc, s.platform, from.Location), nil
	}
	ref, err := normalizeRef(name)
	if err != nil {
		return source{}, from.Errorf("FROM %s: invalid image reference: %v%s", name, err, stageHint(b.stages, name))
	}
	return source{kind: srcImage, ref: ref, plat: s.platform, loc: from.Location, what: "FROM", name: name}, nil
}

// namedContext finds a --build-context for a FROM or --from name: by the
// name as written, or by its normalised forms.
func (b *build) namedContext(name string) (frontend.NamedContext, bool) {
	ncs := b.c.req.NamedContexts
	if len(ncs) == 0 {
		return frontend.NamedContext{}, false
	}
	if nc, ok := ncs[name]; ok {
		return nc, true
	}
	if ref, err := normalizeRef(name); err == nil {
		for _, k := range []string{ref, strings.TrimSuffix(ref, ":latest")} {
			if nc, ok := ncs[k]; ok {
				return nc, true
			}
		}
	}
	return frontend.NamedContext{}, false
}

func (b *build) namedSource(nc frontend.NamedContext, plat ocispec.Platform, loc instructions.Location) source {
	if nc.Local != "" {
		return source{kind: srcLocal, local: nc.Local, loc: loc}
	}
	ref, err := normalizeRef(nc.Image)
	if err != nil {
		ref = nc.Image // the resolver reports it
	}
	return source{kind: srcImage, ref: ref, plat: plat, loc: loc, name: nc.Image}
}

// fromValue resolves the value of COPY --from or mount from= used in stage
// cur.
func (b *build) fromValue(cur *stage, from string, loc instructions.Location, what string) (source, error) {
	var ref *stage
	if idx, err := strconv.Atoi(from); err == nil {
		if idx < 0 || idx >= len(b.stages) {
			return source{}, loc.Errorf("%s=%s: invalid stage index %d: the Dockerfile has %d stages (0 to %d)", what, from, idx, len(b.stages), len(b.stages)-1)
		}
		ref = b.stages[idx]
	} else {
		for _, s := range b.stages {
			if s.st.Name != "" && strings.EqualFold(s.st.Name, from) {
				ref = s
			}
		}
	}
	if ref != nil {
		switch {
		case ref == cur:
			return source{}, loc.Errorf("%s=%s: stage %q depends on itself (circular dependency)", what, from, cur.name)
		case ref.st.Index > cur.st.Index:
			return source{}, loc.Errorf("%s=%s: cannot use stage %q before it is defined: it needs to come before stage %q (line %d)", what, from, ref.name, cur.name, cur.st.From.Range.Start)
		}
		return source{kind: srcStage, stage: ref, loc: loc}, nil
	}
	if strings.EqualFold(from, "scratch") {
		return source{kind: srcScratch, loc: loc}, nil
	}
	if nc, ok := b.namedContext(from); ok {
		return b.namedSource(nc, b.platform, loc), nil
	}
	norm, err := normalizeRef(from)
	if err != nil {
		return source{}, loc.Errorf("%s=%s: no stage named %q%s, and it is not an image reference (%v)", what, from, from, stageHint(b.stages, from), err)
	}
	return source{kind: srcImage, ref: norm, plat: b.platform, loc: loc, what: what, name: from}, nil
}

// stageHint returns " (did you mean NAME?)" when name is close to a stage
// name.
func stageHint(stages []*stage, name string) string {
	var names []string
	for _, s := range stages {
		if s.st.Name != "" {
			names = append(names, s.st.Name)
		}
	}
	if s, ok := suggest(strings.ToLower(name), names); ok {
		return " (did you mean " + s + "?)"
	}
	return ""
}

// resolveReachable finds the stages target needs, resolving their base
// images (concurrently) and collecting ONBUILD triggers, which may add
// dependencies, until nothing new appears.
func (b *build) resolveReachable(ctx context.Context, target *stage) (map[*stage]bool, error) {
	for {
		reach, err := b.reachable(target)
		if err != nil {
			return nil, err
		}
		var need []source
		for _, s := range b.stages {
			if !reach[s] {
				continue
			}
			need = append(need, s.base)
			for _, src := range s.froms {
				need = append(need, src)
			}
		}
		if err := b.c.images.resolveAll(ctx, need, b.stages); err != nil {
			return nil, err
		}
		grew := false
		for _, s := range b.stages {
			if reach[s] && !s.triggersSet {
				if err := b.collectTriggers(ctx, s); err != nil {
					return nil, err
				}
				grew = grew || len(s.triggers) > 0
			}
		}
		if !grew {
			return reach, nil
		}
	}
}

// reachable returns the stages target depends on, target included, and
// records each one's --from sources.
func (b *build) reachable(target *stage) (map[*stage]bool, error) {
	reach := map[*stage]bool{}
	var visit func(s *stage) error
	visit = func(s *stage) error {
		if reach[s] {
			return nil
		}
		reach[s] = true
		if s.replaced {
			return nil
		}
		if s.base.kind == srcStage {
			if err := visit(s.base.stage); err != nil {
				return err
			}
		}
		if err := b.collectFroms(s); err != nil {
			return err
		}
		for _, src := range s.froms {
			if src.kind == srcStage {
				if err := visit(src.stage); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return reach, visit(target)
}

// collectFroms records the sources of the COPY --from and RUN --mount
// from= values of the stage's commands and triggers.
func (b *build) collectFroms(s *stage) error {
	if s.froms == nil {
		s.froms = map[string]source{}
	}
	add := func(from, what string, loc instructions.Location) error {
		if from == "" {
			return nil
		}
		if _, ok := s.froms[from]; ok {
			return nil
		}
		src, err := b.fromValue(s, from, loc, what)
		if err != nil {
			return err
		}
		s.froms[from] = src
		return nil
	}
	for _, cmd := range append(slices.Clone(s.triggers), s.st.Commands...) {
		loc := cmd.Loc()
		switch c := cmd.(type) {
		case *instructions.CopyCommand:
			if err := add(c.From, "COPY --from", loc); err != nil {
				return err
			}
		case *instructions.RunCommand:
			for _, m := range c.Mounts {
				if err := add(m.From, "RUN --mount from", loc); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// finalImage assembles the result for the target stage.
func (b *build) finalImage(target *stage) *frontend.Image {
	st := target.state
	cfg := st.img
	cfg.Created = nil
	cfg.OS, cfg.Architecture, cfg.Variant = b.platform.OS, b.platform.Architecture, b.platform.Variant
	if len(b.c.req.Labels) > 0 {
		if cfg.Config.Labels == nil {
			cfg.Config.Labels = map[string]string{}
		}
		for k, v := range b.c.req.Labels {
			cfg.Config.Labels[k] = v
		}
	}
	img := &frontend.Image{Platform: b.platform, Root: st.root, BaseImage: st.baseRef}
	img.Config = cfg.Image
	img.Config.Config = cfg.Config.ImageConfig
	img.ConfigExt = cfg.Config.ConfigExt
	return img
}

// cloneImage returns a deep copy of an image config.
func cloneImage(img imageconfig.DockerImage) imageconfig.DockerImage {
	data, err := json.Marshal(img)
	if err != nil {
		// Plain data; marshalling cannot fail.
		panic(fmt.Sprintf("convert: marshal image config: %v", err))
	}
	var out imageconfig.DockerImage
	if err := json.Unmarshal(data, &out); err != nil {
		panic(fmt.Sprintf("convert: unmarshal image config: %v", err))
	}
	return out
}
