package convert

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/containerd/platforms"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/core/imageconfig"
	"github.com/kiln-build/kiln/frontend/dockerfile/instructions"
	"github.com/kiln-build/kiln/frontend/dockerfile/parser"
	"github.com/kiln-build/kiln/graph"
)

// historyComment is the comment of every history entry, as BuildKit
// writes it (tools look for it to tell Dockerfile steps).
const historyComment = "buildkit.dockerfile.v0"

// stageState is a stage while and after it is converted.
type stageState struct {
	s        *stage
	img      imageconfig.DockerImage
	root     *graph.Vertex
	args     []argDecl
	baseRef  string // pinned reference of the image the stage chain starts from
	platform ocispec.Platform
	// step numbers the vertices for their names: "[build 2/4] RUN make".
	step, total int
	prefix      string
	cmdSet      bool // CMD given in this stage (ENTRYPOINT then keeps it)
	ignoreCache bool
}

// convertStage converts one stage; the stages it depends on have lower
// indexes and are converted already.
func (b *build) convertStage(s *stage) error {
	st := &stageState{s: s, platform: s.platform}
	st.total = countSteps(s)
	st.prefix = b.namePrefix(s)
	st.ignoreCache = b.ignoresCache(s)
	if err := b.initBase(st); err != nil {
		return err
	}
	if !hasEnvKey(st.img.Config.Env, "PATH") {
		st.img.Config.Env = append(st.img.Config.Env, "PATH="+defaultPath)
	}
	if !s.replaced {
		for i, cmd := range s.triggers {
			if err := b.dispatch(st, cmd, "onbuild-"+strconv.Itoa(i), true); err != nil {
				return err
			}
		}
		for i, cmd := range s.st.Commands {
			if err := b.dispatch(st, cmd, "cmd-"+strconv.Itoa(i), false); err != nil {
				return err
			}
		}
	}
	s.state, s.done = st, true
	return nil
}

// countSteps counts the vertices a stage names "[i/N]": the base image
// and every RUN, COPY, ADD and WORKDIR (triggers included).
func countSteps(s *stage) int {
	n := 0
	if s.base.kind == srcImage || s.base.kind == srcLocal {
		n++
	}
	if s.replaced {
		return n
	}
	for _, cmd := range append(append([]instructions.Command(nil), s.triggers...), s.st.Commands...) {
		switch cmd.(type) {
		case *instructions.RunCommand, *instructions.CopyCommand, *instructions.AddCommand, *instructions.WorkdirCommand:
			n++
		}
	}
	return n
}

// namePrefix is what goes before the step number in names: the platform
// when several are built, and the stage name unless it is the target.
func (b *build) namePrefix(s *stage) string {
	p := ""
	if b.multi {
		p = platforms.Format(s.platform) + " "
	}
	if s.st.Index != b.c.target {
		p += s.name + " "
	}
	return p
}

func (b *build) ignoresCache(s *stage) bool {
	if b.c.req.NoCache {
		return true
	}
	for _, f := range b.c.req.NoCacheFilter {
		if (s.st.Name != "" && strings.EqualFold(f, s.st.Name)) || f == strconv.Itoa(s.st.Index) {
			return true
		}
	}
	return false
}

// initBase sets the stage's starting root, config and ARGs from what its
// FROM refers to.
func (b *build) initBase(st *stageState) error {
	s := st.s
	switch s.base.kind {
	case srcStage:
		base := s.base.stage.state
		st.img = cloneImage(base.img)
		st.root = base.root
		st.args = append([]argDecl(nil), base.args...)
		st.baseRef = base.baseRef
	case srcScratch:
		st.img = emptyImage(st.platform)
	case srcLocal:
		st.img = emptyImage(st.platform)
		v := b.localVertex(s.base.local)
		st.root = graph.NewVertex(v.Op, b.meta(st, st.nextName("FROM "+s.base.local), s.from.Location, "from"))
	case srcImage:
		res, err := b.c.images.lookup(s.base)
		if err != nil {
			return err
		}
		st.img = cloneImage(res.config)
		st.baseRef = res.ref
		name := st.nextName("FROM " + res.ref)
		st.root = imageVertex(res.ref, st.platform, b.meta(st, name, s.from.Location, "from"))
	}
	st.img.Config.OnBuild = nil
	return nil
}

// emptyImage is the config of FROM scratch.
func emptyImage(p ocispec.Platform) imageconfig.DockerImage {
	var img imageconfig.DockerImage
	img.OS, img.Architecture, img.Variant = p.OS, p.Architecture, p.Variant
	img.RootFS.Type = "layers"
	img.Config.WorkingDir = "/" // as BuildKit writes it
	return img
}

// collectTriggers finds the ONBUILD triggers that fire in s: its base
// stage's ONBUILD instructions, or its base image's config OnBuild.
func (b *build) collectTriggers(ctx context.Context, s *stage) error {
	s.triggersSet = true
	if s.replaced {
		return nil
	}
	loc := s.from.Location
	switch s.base.kind {
	case srcStage:
		base := s.base.stage
		if base.replaced {
			return nil
		}
		for _, cmd := range base.st.Commands {
			if ob, ok := cmd.(*instructions.OnbuildCommand); ok {
				t := withLocation(ob.Trigger, loc, ob.Trigger.Loc())
				s.triggers = append(s.triggers, t)
			}
		}
	case srcImage:
		res, err := b.c.images.lookup(s.base)
		if err != nil {
			return err
		}
		for _, expr := range res.config.Config.OnBuild {
			t, err := b.parseTrigger(ctx, expr, loc)
			if err != nil {
				return err
			}
			s.triggers = append(s.triggers, t)
		}
	}
	return nil
}

// parseTrigger parses an ONBUILD trigger of a base image; it is placed at
// the FROM line of the stage that fires it.
func (b *build) parseTrigger(ctx context.Context, expr string, from instructions.Location) (instructions.Command, error) {
	bad := func(err error) error {
		return from.Errorf("ONBUILD trigger %q of the base image: %v", expr, err)
	}
	res, err := parser.Parse(ctx, []byte(expr), b.c.df.Name)
	if err != nil {
		return nil, bad(err)
	}
	if len(res.Nodes) != 1 {
		return nil, bad(fmt.Errorf("a trigger must be one instruction, found %d", len(res.Nodes)))
	}
	switch res.Nodes[0].Name() {
	case "onbuild", "from", "maintainer":
		return nil, bad(fmt.Errorf("%s isn't allowed as an ONBUILD trigger", strings.ToUpper(res.Nodes[0].Keyword)))
	}
	cmd, err := instructions.ParseCommand(res.Nodes[0], b.c.df.Name, b.c.df.Directives.Escape)
	if err != nil {
		return nil, bad(err)
	}
	return withLocation(cmd, from, cmd.Loc()), nil
}

// withLocation returns a copy of cmd placed at the range of at, keeping
// its own keyword and text. Every command type embeds Location as a field
// of that name; reflection saves a case per type.
func withLocation(cmd instructions.Command, at, own instructions.Location) instructions.Command {
	loc := own
	loc.File, loc.Range = at.File, at.Range
	v := reflect.ValueOf(cmd)
	if v.Kind() != reflect.Pointer {
		return cmd
	}
	cp := reflect.New(v.Elem().Type())
	cp.Elem().Set(v.Elem())
	f := cp.Elem().FieldByName("Location")
	if !f.IsValid() || !f.CanSet() || f.Type() != reflect.TypeOf(loc) {
		return cmd
	}
	f.Set(reflect.ValueOf(loc))
	out, ok := cp.Interface().(instructions.Command)
	if !ok {
		return cmd
	}
	return out
}

// nextName numbers the stage's next vertex: "[build 2/4] RUN make".
func (st *stageState) nextName(text string) string {
	st.step++
	return st.numbered(st.step, text)
}

// numbered is a name with step number n.
func (st *stageState) numbered(n int, text string) string {
	if st.total == 0 {
		return text
	}
	w := len(strconv.Itoa(st.total))
	return fmt.Sprintf("[%s%*d/%d] %s", st.prefix, w, n, st.total, text)
}

// meta is the metadata of a vertex of the stage made by the instruction at
// loc; key names the instruction within the stage for StepID.
func (b *build) meta(st *stageState, name string, loc instructions.Location, key string) graph.Meta {
	return graph.Meta{
		Name:     name,
		Location: &graph.Location{File: loc.File, Start: loc.Range.Start, End: loc.Range.End},
		StepID:   b.stepID(st, key),
	}
}

// stepMeta is meta for a step that runs (exec, file, merge): it honours
// --no-cache.
func (b *build) stepMeta(st *stageState, name string, loc instructions.Location, key string) graph.Meta {
	m := b.meta(st, name, loc, key)
	m.IgnoreCache = st.ignoreCache
	return m
}

// stepID identifies a step across builds: the context, the Dockerfile,
// the stage (name or index), its platform and the instruction's position.
func (b *build) stepID(st *stageState, key string) string {
	stageKey := st.s.st.Name
	if stageKey == "" {
		stageKey = strconv.Itoa(st.s.st.Index)
	}
	parts := []string{"kiln/step/v1", b.c.req.SharedKeyHint, b.c.df.Name, stageKey, platforms.FormatAll(st.platform), key}
	return digest.FromString(strings.Join(parts, "\x00")).String()
}

// addHistory appends a history entry; layer tells whether the step
// changed the filesystem.
func (st *stageState) addHistory(createdBy string, layer bool) {
	st.img.History = append(st.img.History, ocispec.History{
		CreatedBy:  createdBy,
		Comment:    historyComment,
		EmptyLayer: !layer,
	})
}
