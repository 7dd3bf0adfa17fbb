package convert

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/core/imageconfig"
	"github.com/kiln-build/kiln/frontend"
	"github.com/kiln-build/kiln/frontend/dockerfile/instructions"
	"github.com/kiln-build/kiln/graph"
)

const multiStage = `FROM golang:1.22 AS build
RUN go build -o /app
FROM alpine AS unused
RUN false
FROM build AS test
RUN go test
FROM scratch
COPY --from=build /app /app
`

func TestTargetPruning(t *testing.T) {
	t.Parallel()
	res := &fakeResolver{}
	img := mustConvert(t, multiStage, withResolver(res))
	want := []string{
		"[build 1/2] FROM docker.io/library/golang:1.22@" + strings.TrimPrefix(byName(t, img.Root, "FROM").Op.Source.Image.Ref, "docker.io/library/golang:1.22@"),
		"[build 2/2] RUN go build -o /app",
		"[1/1] COPY --from=build /app /app",
	}
	if diff := cmp.Diff(want, names(img.Root)); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
	if n := res.callCount("docker.io/library/alpine:latest|linux/amd64"); n != 0 {
		t.Errorf("the unused stage's image was resolved %d times", n)
	}
	img = mustConvert(t, multiStage, withResolver(res), withTarget("TEST"))
	if got := names(img.Root); len(got) != 3 || got[2] != "[1/1] RUN go test" || got[1] != "[build 2/2] RUN go build -o /app" {
		t.Errorf("target test: names %q", got)
	}
	if n := res.callCount("docker.io/library/golang:1.22|linux/amd64"); n != 2 {
		t.Errorf("golang resolved %d times over two converters, want once each", n)
	}
}

func TestStageNames(t *testing.T) {
	t.Parallel()
	img := mustConvert(t, "FROM busybox\nRUN a\nFROM busybox\nCOPY --from=0 /a /a\nRUN b\nRUN c\nRUN d\nRUN e\nRUN f\nRUN g\nRUN h\nRUN i\n")
	got := names(img.Root)
	if got[1] != "[stage-0 2/2] RUN a" || got[2] != "[ 2/10] COPY --from=0 /a /a" || got[len(got)-1] != "[10/10] RUN i" {
		t.Errorf("names = %q", got)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, src, target string
		want              string
	}{
		{"undefined stage index", "FROM busybox\nCOPY --from=3 /a /a\n", "",
			"Dockerfile:2: COPY --from=3: invalid stage index 3: the Dockerfile has 1 stages (0 to 0)"},
		{"self dependency", "FROM busybox AS a\nCOPY --from=a /x /x\n", "",
			`Dockerfile:2: COPY --from=a: stage "a" depends on itself (circular dependency)`},
		{"self by index", "FROM busybox\nRUN --mount=from=0,target=/x true\n", "",
			`Dockerfile:2: RUN --mount from=0: stage "stage-0" depends on itself (circular dependency)`},
		{"out of order", "FROM busybox AS a\nCOPY --from=b /x /x\nFROM busybox AS b\n", "a",
			`Dockerfile:2: COPY --from=b: cannot use stage "b" before it is defined: it needs to come before stage "a" (line 1)`},
		{"undefined stage name", "FROM busybox AS build\nFROM scratch\nCOPY --from=Biuld:x:y /x /x\n", "",
			`Dockerfile:3: COPY --from=Biuld:x:y: no stage named "Biuld:x:y"`},
		{"duplicate stage names", "FROM busybox AS a\nFROM busybox AS A\n", "",
			`Dockerfile:2: FROM: duplicate stage name "A" (already used on line 1); stage names must be unique`},
		{"missing target", "FROM busybox AS base\nFROM base AS build\nFROM build AS final\n", "biuld",
			`target stage "biuld" could not be found (did you mean build?; stages: base, build, final)`},
		{"missing target, no names", "FROM busybox\n", "x",
			`target stage "x" could not be found (no stage has a name; name one with FROM image AS name)`},
		{"bad platform", "FROM --platform=linux/$NOPE busybox\n", "",
			`Dockerfile:1: FROM --platform=linux/$NOPE: invalid platform "linux/"`},
		{"resolve failure", "FROM busybox\nFROM nosuch\n", "",
			"Dockerfile:2: FROM nosuch: resolve image docker.io/library/nosuch:latest for linux/amd64: docker.io/library/nosuch:latest: not found"},
		{"undefined stage, not an image", "FROM busybox AS build\nFROM scratch\nCOPY --from=biuld /x /x\n", "",
			`Dockerfile:3: COPY --from=biuld: no stage named "biuld" (did you mean build?); as an image: resolve image docker.io/library/biuld:latest for linux/amd64: docker.io/library/biuld:latest: not found`},
		{"typo in FROM", "FROM busybox AS build\nFROM biuld\n", "",
			`Dockerfile:2: FROM biuld: resolve image docker.io/library/biuld:latest for linux/amd64: docker.io/library/biuld:latest: not found (did you mean build?)`},
		{"bad trigger", "FROM badonbuild\n", "",
			`Dockerfile:1: ONBUILD trigger "FROM x" of the base image: FROM isn't allowed as an ONBUILD trigger`},
	}
	res := &fakeResolver{
		fail:    map[string]bool{"docker.io/library/nosuch:latest": true, "docker.io/library/biuld:latest": true},
		configs: map[string]string{"docker.io/library/badonbuild:latest": `{"config":{"OnBuild":["FROM x"]}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := convertErr(tt.src, amd64, withTarget(tt.target), withResolver(res))
			if got := errorText(err); !strings.HasPrefix(got, tt.want) {
				t.Errorf("error = %q\nwant prefix %q", got, tt.want)
			}
			if err != nil && !errdefs.IsInvalidArgument(err) && !errdefs.IsNotFound(err) {
				t.Errorf("error %v has no class", err)
			}
		})
	}
}

func TestOnbuildTriggers(t *testing.T) {
	t.Parallel()
	res := &fakeResolver{configs: map[string]string{
		"docker.io/library/onbuild:latest": `{"config":{"OnBuild":["RUN echo triggered", "COPY --from=helper /h /h"]}}`,
	}}
	src := "FROM busybox AS helper\nFROM onbuild AS app\nRUN echo mine\nONBUILD RUN echo next\nFROM app\nRUN echo last\n"
	img, _, err := convertErr(src, amd64, withResolver(res))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"[app 1/4] FROM docker.io/library/onbuild:latest",
		"[app 2/4] ONBUILD RUN echo triggered",
		"[helper 1/1] FROM docker.io/library/busybox:latest",
		"[app 3/4] ONBUILD COPY --from=helper /h /h",
		"[app 4/4] RUN echo mine",
		"[1/2] ONBUILD RUN echo next",
		"[2/2] RUN echo last",
	}
	var got []string
	for _, n := range names(img.Root) {
		got = append(got, strings.Split(n, "@")[0])
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
	trig := byName(t, img.Root, "ONBUILD RUN echo triggered")
	if l := trig.Meta.Location; l == nil || l.Start != 2 {
		t.Errorf("trigger location = %+v, want the FROM line 2", l)
	}
	if got := img.ConfigExt.OnBuild; got != nil {
		t.Errorf("fired triggers stay in the config: %q", got)
	}
	if h := img.Config.History; len(h) != 5 || h[0].CreatedBy != "RUN /bin/sh -c echo triggered # buildkit" || h[3].CreatedBy != "RUN /bin/sh -c echo next # buildkit" {
		t.Errorf("history = %+v", h)
	}
}

func TestNamedContexts(t *testing.T) {
	t.Parallel()
	src := "FROM busybox AS deps\nRUN false\nFROM alpine\nCOPY --from=deps /x /x\nCOPY --from=assets / /assets\n"
	img := mustConvert(t, src, func(r *frontend.Request) {
		r.NamedContexts = map[string]frontend.NamedContext{
			"deps":   {Image: "example.com/deps:1"},
			"alpine": {Image: "alpine:3.19"},
			"assets": {Local: "assets-dir"},
		}
	})
	var got []string
	for _, n := range names(img.Root) {
		got = append(got, strings.Split(n, "@")[0])
	}
	want := []string{
		"[1/3] FROM docker.io/library/alpine:3.19",
		"[deps 1/1] FROM example.com/deps:1",
		"[2/3] COPY --from=deps /x /x",
		"[context assets-dir] load from client",
		"[3/3] COPY --from=assets / /assets",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
}

func TestMultiPlatformSharing(t *testing.T) {
	t.Parallel()
	src := "FROM --platform=$BUILDPLATFORM golang AS build\nRUN go generate\nARG TARGETARCH\nRUN GOARCH=$TARGETARCH go build\nFROM busybox\nCOPY --from=build /app /app\n"
	df, err := instructions.Parse(context.Background(), []byte(src), "Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	res := &fakeResolver{}
	req := newRequest(withResolver(res))
	req.Platforms = []ocispec.Platform{amd64, arm64}
	c, err := New(df, req)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	imgs := make([]*frontend.Image, 2)
	errs := make([]error, 2)
	for i, p := range c.Platforms() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			imgs[i], _, errs[i] = c.Convert(context.Background(), p)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	gen := [2]*graph.Vertex{byName(t, imgs[0].Root, "go generate"), byName(t, imgs[1].Root, "go generate")}
	if gen[0].Digest() != gen[1].Digest() || gen[0].Meta.Name != "[linux/amd64 build 2/3] RUN go generate" || gen[1].Meta.Name != "[linux/amd64 build 2/3] RUN go generate" {
		t.Errorf("build-platform step differs across targets: %q %q", gen[0].Meta.Name, gen[1].Meta.Name)
	}
	if byName(t, imgs[0].Root, "go build").Digest() == byName(t, imgs[1].Root, "go build").Digest() {
		t.Errorf("the step using TARGETARCH is the same for both targets")
	}
	if n := res.callCount("docker.io/library/golang:latest|linux/amd64"); n != 1 {
		t.Errorf("golang for linux/amd64 resolved %d times, want 1", n)
	}
	if imgs[1].Config.Architecture != "arm64" || !cmp.Equal(imgs[1].Platform, arm64) {
		t.Errorf("arm64 image config says %s", imgs[1].Config.Architecture)
	}
}

func TestDeterministic(t *testing.T) {
	t.Parallel()
	src := multiStage + "ARG X=1\nRUN --mount=type=cache,target=/c echo $X\nCOPY --link . /\n"
	var out []string
	for range 3 {
		img := mustConvert(t, src, withArgs("X", "2", "HTTP_PROXY", "p"), withTarget(""))
		data, err := json.Marshal(struct {
			G graph.Definition
			C imageconfig.DockerImage
		}{graph.Marshal(img.Root), img.DockerConfig()})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(data))
	}
	if out[0] != out[1] || out[1] != out[2] {
		t.Errorf("the same Dockerfile converted three times differs")
	}
}

func TestNoCacheAndStepIDs(t *testing.T) {
	t.Parallel()
	src := "FROM busybox AS a\nRUN one\nFROM busybox\nCOPY --from=a /x /x\nRUN two\n"
	img := mustConvert(t, src, func(r *frontend.Request) { r.NoCacheFilter = []string{"a"} })
	if !byName(t, img.Root, "RUN one").Meta.IgnoreCache || byName(t, img.Root, "RUN two").Meta.IgnoreCache {
		t.Errorf("--no-cache-filter=a must mark the steps of stage a only")
	}
	img = mustConvert(t, src, func(r *frontend.Request) { r.NoCache = true })
	for _, v := range vertices(img.Root) {
		if v.Op.Source == nil && !v.Meta.IgnoreCache {
			t.Errorf("--no-cache: %q does not ignore the cache", v.Meta.Name)
		}
	}
	// A step keeps its StepID when its text changes; steps differ.
	a := mustConvert(t, src)
	b := mustConvert(t, strings.Replace(src, "RUN two", "RUN three", 1))
	if a.Root.Meta.StepID != b.Root.Meta.StepID || a.Root.Meta.StepID == "" {
		t.Errorf("step id changed with the command: %q %q", a.Root.Meta.StepID, b.Root.Meta.StepID)
	}
	c := mustConvert(t, src, func(r *frontend.Request) { r.SharedKeyHint = "/home/me/app" })
	if c.Root.Meta.StepID == a.Root.Meta.StepID || a.Root.Meta.StepID == a.Root.Inputs[0].Meta.StepID {
		t.Errorf("step ids do not tell contexts or steps apart")
	}
}

func TestDockerignore(t *testing.T) {
	t.Parallel()
	pats, err := ParseDockerignore([]byte("\ufeff# comment\n\n  node_modules  \n!node_modules/keep\n/abs/path\n**/*.tmp\n./x/../y\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"node_modules", "!node_modules/keep", "abs/path", "**/*.tmp", "y"}; !cmp.Equal(pats, want) {
		t.Errorf("patterns = %q, want %q", pats, want)
	}
	if _, err := ParseDockerignore([]byte("[\n")); err == nil || !errdefs.IsInvalidArgument(err) {
		t.Errorf("bad pattern: err = %v", err)
	}
	img := mustConvert(t, "FROM busybox\nCOPY . /\n", func(r *frontend.Request) { r.Dockerignore = []byte("*.log\n"); r.SharedKeyHint = "k" })
	l := img.Root.Inputs[1].Op.Source.Local
	if l == nil || !cmp.Equal(l.ExcludePatterns, []string{"*.log"}) || l.Name != "context" || l.SharedKeyHint != "k" {
		t.Errorf("context source = %+v", l)
	}
}
